/**
 * `libtorch-features extract`: features of images, folders and videos, in batches, to NumPy .npy
 * files (one per layer) and an index of the source of each row. The outputs are checked before the
 * model loads, written to temporary files created exclusively beside them and renamed at the end:
 * an interrupted or failed run leaves nothing behind (see outputs.ts).
 */
import { Extractor } from '../extractor';
import type { ExtractorOptions } from '../types';
import { CliError } from './errors';
import { INDEX_HEADER, writeFeatures } from './feature-writer';
import { NpyWriter } from './npy';
import { Outputs, writeAll } from './outputs';
import { createProgress } from './progress';
import { type Source, estimateRows, hasFfmpeg, listSources } from './sources';

export interface ExtractOptions {
  layer: string[];
  out: string;
  pool?: 'avg' | 'max';
  normalize?: 'l2';
  batch: number;
  device: NonNullable<ExtractorOptions['device']>;
  dtype: NonNullable<ExtractorOptions['dtype']>;
  fps: number;
  quiet: boolean;
  /** Freeze with LibTorch's inference optimisations (the CLI's default; `--no-optimize`). */
  optimize: boolean;
  /** With optimize on the CPU, Winograd for 3x3 convolutions (default; `--no-winograd` saves memory). */
  winograd: boolean;
  /** Skip images that cannot be decoded or that the extractor refuses, with a warning each, instead of failing. */
  skipUnreadable?: boolean;
  /** Aborts the run (Ctrl-C): what was started is removed. */
  signal: AbortSignal;
  /** Where warnings go (one line each); stderr by default. */
  warn?: (line: string) => void;
}

/** Where each layer's rows go: the --out path for one layer, out.<layer>.npy for several. */
export function outputPaths(out: string, layers: readonly string[]): string[] {
  if (layers.length === 1) return [out];
  const base = out.endsWith('.npy') ? out.slice(0, -4) : out;
  return layers.map((layer) => `${base}.${layer}.npy`);
}

/** The index file beside the features: out.index.csv. */
export function indexPath(out: string): string {
  return `${out.endsWith('.npy') ? out.slice(0, -4) : out}.index.csv`;
}

/** The extractor's options for the command line's. */
export function extractorOptions(
  options: Pick<ExtractOptions, 'device' | 'dtype' | 'pool' | 'normalize' | 'optimize' | 'winograd'>,
): ExtractorOptions {
  return {
    device: options.device,
    dtype: options.dtype,
    pool: options.pool,
    normalize: options.normalize,
    optimize: options.optimize,
    winograd: options.winograd,
  };
}

/** Throws a CliError when `sources` hold a video and ffmpeg cannot be run. */
export function checkVideoTools(sources: readonly Source[]): void {
  if (sources.some((s) => s.kind === 'video') && !hasFfmpeg()) {
    throw new CliError('videos need ffmpeg and ffprobe on PATH (Debian: apt-get install ffmpeg); none was found');
  }
}

/** Runs the extraction; returns the number of rows written and the files, and how many inputs were skipped. */
export async function runExtract(
  model: string,
  inputs: readonly string[],
  options: ExtractOptions,
): Promise<{ rows: number; files: string[]; skipped: number }> {
  const sources = listSources(inputs);
  checkVideoTools(sources);
  const warn = options.warn ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Before the model loads: every output can be written, or one line says why.
  const outputs = new Outputs([...outputPaths(options.out, options.layer), indexPath(options.out)]);
  let ex: Extractor<string[]> | undefined;
  let progress: ReturnType<typeof createProgress> | undefined;
  let finished = false;
  try {
    const writers = outputs.fds.slice(0, -1).map((fd, i) => new NpyWriter(fd, outputs.finals[i]));
    const index = outputs.fds[outputs.fds.length - 1];
    writeAll(index, Buffer.from(INDEX_HEADER));
    ex = await Extractor.create(model, options.layer, extractorOptions(options));
    progress = createProgress(estimateRows(sources, options.fps), { quiet: options.quiet });
    const bar = progress;
    const { rows, skipped } = await writeFeatures(ex, sources, writers, index, {
      layers: options.layer,
      batch: options.batch,
      fps: options.fps,
      skipUnreadable: Boolean(options.skipUnreadable),
      signal: options.signal,
      warn,
      tick: (count) => bar.tick(count),
    });
    if (options.signal.aborted) throw new CliError('interrupted: nothing was written', 130);
    if (rows === 0 && skipped > 0) throw new CliError(`nothing was written: all ${skipped} inputs were unreadable`);
    writers.forEach((w) => w.finish());
    outputs.commit();
    finished = true;
    return { rows, files: [...outputs.finals], skipped };
  } finally {
    progress?.stop(finished);
    ex?.dispose();
    outputs.discard();
  }
}

/**
 * `libtorch-features extract`: features of images, folders and videos, in batches, to NumPy .npy
 * files (one per layer) and an index of the source of each row. Written to temporary files and
 * renamed at the end: an interrupted or failed run leaves nothing behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Extractor } from '../extractor';
import type { FeatureTensor } from '../feature-tensor';
import type { ExtractorOptions } from '../types';
import { CliError } from './errors';
import { NpyWriter } from './npy';
import { createProgress } from './progress';
import { type Frame, estimateRows, frames, hasFfmpeg, listSources } from './sources';

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
  /** Aborts the run (Ctrl-C): what was started is removed. */
  signal: AbortSignal;
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

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

async function nextBatch(source: AsyncGenerator<Frame>, size: number): Promise<Frame[]> {
  const batch: Frame[] = [];
  while (batch.length < size) {
    const next = await source.next();
    if (next.done) break;
    batch.push(next.value);
  }
  return batch;
}

/** Runs the extraction; returns the number of rows written. */
export async function runExtract(
  model: string,
  inputs: readonly string[],
  options: ExtractOptions,
): Promise<{ rows: number; files: string[] }> {
  const sources = listSources(inputs);
  if (sources.some((s) => s.kind === 'video') && !hasFfmpeg()) {
    throw new CliError('videos need ffmpeg and ffprobe on PATH (Debian: apt-get install ffmpeg); none was found');
  }
  const ex = await Extractor.create(model, options.layer, {
    device: options.device,
    dtype: options.dtype,
    pool: options.pool,
    normalize: options.normalize,
    optimize: options.optimize,
    winograd: options.winograd,
  });
  const finals = [...outputPaths(options.out, options.layer), indexPath(options.out)];
  const temps = finals.map((file) => path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.partial`));
  const writers = temps.slice(0, -1).map((file) => new NpyWriter(file));
  const index = fs.openSync(temps[temps.length - 1], 'w');
  fs.writeSync(index, 'row,source,frame,time_s\n');
  const progress = createProgress(estimateRows(sources, options.fps), { quiet: options.quiet });

  let rows = 0;
  let finished = false;
  try {
    const items = frames(sources, options.fps, options.signal);
    // Decoding the next batch overlaps the forward of this one.
    let pending = nextBatch(items, options.batch);
    for (;;) {
      const batch = await pending;
      if (batch.length === 0 || options.signal.aborted) break;
      pending = nextBatch(items, options.batch);
      const features = await ex.extract(batch.map((f) => f.image));
      options.layer.forEach((layer, i) => {
        const tensor = (features as Record<string, FeatureTensor>)[layer];
        writers[i].append(tensor.data, tensor.shape.slice(1), batch.length);
      });
      const lines = batch.map(
        (f, i) => `${rows + i},${csvField(f.source)},${f.video ? f.frame : ''},${f.video ? f.time.toFixed(3) : ''}\n`,
      );
      fs.writeSync(index, lines.join(''));
      rows += batch.length;
      progress.tick(batch.length);
    }
    await pending.catch(() => undefined);
    if (options.signal.aborted) throw new CliError('interrupted: nothing was written', 130);
    writers.forEach((w) => w.close());
    fs.closeSync(index);
    finished = true;
    temps.forEach((temp, i) => fs.renameSync(temp, finals[i]));
    return { rows, files: finals };
  } finally {
    progress.stop(finished);
    ex.dispose();
    if (!finished) {
      writers.forEach((w) => w.abandon());
      try {
        fs.closeSync(index);
      } catch {
        // already closed
      }
      temps.forEach((temp) => fs.rmSync(temp, { force: true }));
    }
  }
}

/**
 * `libtorch-features extract`: features of images, folders and videos, in batches, to NumPy .npy
 * files (one per layer) and an index of the source of each row. The outputs are checked before the
 * model loads, written to temporary files created exclusively beside them and renamed at the end:
 * an interrupted or failed run leaves nothing behind (see outputs.ts).
 */
import { ExtractorError } from '../errors';
import { Extractor } from '../extractor';
import type { FeatureTensor } from '../feature-tensor';
import type { ExtractorOptions } from '../types';
import { CliError, oneLine } from './errors';
import { NpyWriter } from './npy';
import { Outputs, writeAll } from './outputs';
import { createProgress } from './progress';
import { type Frame, type UnreadableImage, estimateRows, frames, hasFfmpeg, listSources } from './sources';

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

/** Errors of the extractor that are about one input rather than the model or the machine. */
function refusedInput(error: unknown): error is ExtractorError {
  return error instanceof ExtractorError && (error.code === 'INVALID_INPUT' || error.code === 'FORWARD_FAILED');
}

function describeFrame(frame: Frame): string {
  return frame.video ? `${frame.source} (frame ${frame.frame})` : frame.source;
}

/** Runs the extraction; returns the number of rows written and the files, and how many inputs were skipped. */
export async function runExtract(
  model: string,
  inputs: readonly string[],
  options: ExtractOptions,
): Promise<{ rows: number; files: string[]; skipped: number }> {
  const sources = listSources(inputs);
  if (sources.some((s) => s.kind === 'video') && !hasFfmpeg()) {
    throw new CliError('videos need ffmpeg and ffprobe on PATH (Debian: apt-get install ffmpeg); none was found');
  }
  const warn = options.warn ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Before the model loads: every output can be written, or one line says why.
  const outputs = new Outputs([...outputPaths(options.out, options.layer), indexPath(options.out)]);
  // Stops the decoding (and ffmpeg) when the run ends early, whatever the reason.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal.addEventListener('abort', onAbort, { once: true });
  let ex: Extractor<string[]> | undefined;
  let progress: ReturnType<typeof createProgress> | undefined;
  let finished = false;
  let skipped = 0;
  const skip = (what: string, reason: string) => {
    skipped++;
    warn(`libtorch-features: skipped unreadable input ${what}: ${reason}`);
  };
  try {
    const writers = outputs.fds.slice(0, -1).map((fd, i) => new NpyWriter(fd, outputs.finals[i]));
    const index = outputs.fds[outputs.fds.length - 1];
    writeAll(index, Buffer.from('row,source,frame,time_s\n'));
    ex = await Extractor.create(model, options.layer, {
      device: options.device,
      dtype: options.dtype,
      pool: options.pool,
      normalize: options.normalize,
      optimize: options.optimize,
      winograd: options.winograd,
    });
    const extractor = ex;
    progress = createProgress(estimateRows(sources, options.fps), { quiet: options.quiet });

    /**
     * The features of a batch, as parts that each hold their frames. When the extractor refuses
     * the batch for an input's sake, its frames go one at a time to find which: skipped with
     * --skip-unreadable, named in the error otherwise.
     */
    const forward = async (batch: Frame[]): Promise<{ frames: Frame[]; features: Record<string, FeatureTensor> }[]> => {
      try {
        return [{ frames: batch, features: await extractor.extract(batch.map((f) => f.image)) }];
      } catch (error) {
        if (!refusedInput(error)) throw error;
        if (batch.length > 1) {
          const parts = [];
          for (const frame of batch) parts.push(...(await forward([frame])));
          return parts;
        }
        const reason = `${error.code}: ${oneLine(error.message)}`;
        if (!options.skipUnreadable) throw new CliError(`cannot extract features of ${describeFrame(batch[0])}: ${reason}`);
        skip(describeFrame(batch[0]), reason);
        return [];
      }
    };

    let rows = 0;
    const onUnreadable = options.skipUnreadable
      ? (error: UnreadableImage) => {
          skip(error.file, error.reason);
          progress?.tick(1);
        }
      : undefined;
    const items = frames(sources, options.fps, stop.signal, onUnreadable);
    // Decoding the next batch overlaps the forward of this one. Its failure is handled where it
    // is awaited; until then it must not count as an unhandled rejection.
    let pending = nextBatch(items, options.batch);
    pending.catch(() => undefined);
    try {
      for (;;) {
        const batch = await pending;
        if (batch.length === 0 || options.signal.aborted) break;
        pending = nextBatch(items, options.batch);
        pending.catch(() => undefined);
        for (const part of await forward(batch)) {
          options.layer.forEach((layer, i) => {
            const tensor = part.features[layer];
            writers[i].append(tensor.data, tensor.shape.slice(1), part.frames.length);
          });
          const lines = part.frames.map(
            (f, i) => `${rows + i},${csvField(f.source)},${f.video ? f.frame : ''},${f.video ? f.time.toFixed(3) : ''}\n`,
          );
          writeAll(index, Buffer.from(lines.join('')));
          rows += part.frames.length;
        }
        progress.tick(batch.length);
      }
    } finally {
      stop.abort();
      await pending.catch(() => undefined);
      await items.return(undefined);
    }
    if (options.signal.aborted) throw new CliError('interrupted: nothing was written', 130);
    if (rows === 0 && skipped > 0) throw new CliError(`nothing was written: all ${skipped} inputs were unreadable`);
    writers.forEach((w) => w.finish());
    outputs.commit();
    finished = true;
    return { rows, files: [...outputs.finals], skipped };
  } finally {
    options.signal.removeEventListener('abort', onAbort);
    progress?.stop(finished);
    ex?.dispose();
    outputs.discard();
  }
}

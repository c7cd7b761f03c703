/**
 * The loop shared by `extract` and by each part of an extraction to a folder: the frames of some
 * sources, decoded a batch ahead, through an extractor already loaded, appended to open .npy
 * writers (one per layer) and an index. The caller owns the files and the extractor.
 */
import { ExtractorError } from '../errors';
import type { Extractor } from '../extractor';
import type { FeatureTensor } from '../feature-tensor';
import { CliError, oneLine } from './errors';
import type { NpyWriter } from './npy';
import { writeAll } from './outputs';
import { type Frame, type Source, type UnreadableImage, frames } from './sources';

/** The first line of every index: what `extract` and `merge` write, and what a part holds. */
export const INDEX_HEADER = 'row,source,frame,time_s\n';

export interface WriteFeaturesOptions {
  layers: readonly string[];
  batch: number;
  fps: number;
  skipUnreadable: boolean;
  /** Stops after the batch in flight; the caller then discards what was written. */
  signal: AbortSignal;
  /** One line per skipped input. */
  warn: (line: string) => void;
  /** Inputs done, for a progress display. */
  tick: (count: number) => void;
}

/** A CSV field as the index writes it (quoted when it holds a comma, a quote or a line break). */
export function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** One line of the index for `frame` at `row`. */
export function indexLine(row: number, frame: Frame): string {
  return `${row},${csvField(frame.source)},${frame.video ? frame.frame : ''},${frame.video ? frame.time.toFixed(3) : ''}\n`;
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

/**
 * Extracts every frame of `sources` in batches and appends the rows to `writers` (in the order of
 * `options.layers`) and the index lines to the file open at `index` (rows numbered from 0; the
 * header is the caller's). Resolves to the rows written and the inputs skipped; when the signal
 * fires it stops after the batch in flight and resolves early (check `signal.aborted`).
 */
export async function writeFeatures(
  extractor: Extractor<string[]>,
  sources: readonly Source[],
  writers: readonly NpyWriter[],
  index: number,
  options: WriteFeaturesOptions,
): Promise<{ rows: number; skipped: number }> {
  let skipped = 0;
  const skip = (what: string, reason: string) => {
    skipped++;
    options.warn(`libtorch-features: skipped unreadable input ${what}: ${reason}`);
  };

  /**
   * The features of a batch, as pieces that each hold their frames. When the extractor refuses
   * the batch for an input's sake, its frames go one at a time to find which: skipped with
   * --skip-unreadable, named in the error otherwise.
   */
  const forward = async (batch: Frame[]): Promise<{ frames: Frame[]; features: Record<string, FeatureTensor> }[]> => {
    try {
      return [{ frames: batch, features: await extractor.extract(batch.map((f) => f.image)) }];
    } catch (error) {
      if (!refusedInput(error)) throw error;
      if (batch.length > 1) {
        const pieces = [];
        for (const frame of batch) pieces.push(...(await forward([frame])));
        return pieces;
      }
      const reason = `${error.code}: ${oneLine(error.message)}`;
      if (!options.skipUnreadable) throw new CliError(`cannot extract features of ${describeFrame(batch[0])}: ${reason}`);
      skip(describeFrame(batch[0]), reason);
      return [];
    }
  };

  // Stops the decoding (and ffmpeg) when the loop ends, whatever the reason, or at once on an abort.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal.addEventListener('abort', onAbort, { once: true });
  const onUnreadable = options.skipUnreadable
    ? (error: UnreadableImage) => {
        skip(error.file, error.reason);
        options.tick(1);
      }
    : undefined;
  const items = frames(sources, options.fps, stop.signal, onUnreadable);
  let rows = 0;
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
      for (const piece of await forward(batch)) {
        options.layers.forEach((layer, i) => {
          const tensor = piece.features[layer];
          if (tensor.shape[0] !== piece.frames.length) {
            // A parameter (ConvNeXt's layer_scale) or another node that has no row per input.
            throw new CliError(
              `layer ${layer} gives [${tensor.shape.join(', ')}] for ${piece.frames.length} input(s), not a row per input: ` +
                'it cannot be written row by row (a parameter, or a node that does not depend on the input); read it with the API',
            );
          }
          writers[i].append(tensor.data, tensor.shape.slice(1), piece.frames.length);
        });
        writeAll(index, Buffer.from(piece.frames.map((f, i) => indexLine(rows + i, f)).join('')));
        rows += piece.frames.length;
      }
      options.tick(batch.length);
    }
  } finally {
    options.signal.removeEventListener('abort', onAbort);
    stop.abort();
    await pending.catch(() => undefined);
    await items.return(undefined);
  }
  return { rows, skipped };
}

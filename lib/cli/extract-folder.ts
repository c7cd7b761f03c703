/**
 * `libtorch-features extract ... --out DIR/`: the extraction as a folder of parts (see
 * parts-manifest.ts), so that a crash loses one part at most (`--resume`) and any scheduler can
 * run N processes on it (`--shard K/N`). One extractor for all the parts this process writes.
 */
import * as fs from 'node:fs';

import { Extractor } from '../extractor';
import { CliError } from './errors';
import { type ExtractOptions, checkVideoTools, extractorOptions } from './extract';
import { createProgress } from './progress';
import { type PartState, partSources, partState, prepareFolder, runPart, writeManifest } from './parts-folder';
import {
  type Manifest,
  type PartOptions,
  type Shard,
  checkLayerForFiles,
  DEFAULT_PART_SIZE,
  checkPartSize,
  makeManifest,
  readManifest,
  sha256File,
  shardParts,
} from './parts-manifest';
import { estimateRows, listSources } from './sources';

export interface FolderOptions extends Omit<ExtractOptions, 'out'> {
  /** The folder of parts (created when missing; its parent must exist). */
  dir: string;
  /** Inputs per part; by default the folder's when it holds an extraction, else DEFAULT_PART_SIZE. */
  partSize?: number;
  /** Keep the parts already complete (and check that the folder holds this extraction). */
  resume: boolean;
  /** Only this slice of the parts. */
  shard?: Shard;
}

export interface FolderResult {
  /** The parts of the whole extraction, of this shard, found complete, and written now. */
  parts: number;
  mine: number;
  complete: number;
  written: number;
  rows: number;
  skipped: number;
}

/** The options a folder records, from the command line's. */
export function partOptions(
  options: Pick<ExtractOptions, 'pool' | 'normalize' | 'dtype' | 'optimize' | 'winograd' | 'batch' | 'fps' | 'skipUnreadable'>,
): PartOptions {
  return {
    pool: options.pool ?? null,
    normalize: options.normalize ?? null,
    dtype: options.dtype,
    optimize: options.optimize,
    winograd: options.winograd,
    batch: options.batch,
    fps: options.fps,
    skipUnreadable: Boolean(options.skipUnreadable),
  };
}

/**
 * The manifest that `model`, `inputs` and `options` make for the folder `dir`, checked before
 * anything loads: inputs listed, layer names fit for file names, part size in range, model hashed.
 */
export async function plannedManifest(
  model: string,
  inputs: readonly string[],
  layers: readonly string[],
  options: PartOptions,
  partSize: number | undefined,
  dir: string,
): Promise<Manifest> {
  if (partSize === undefined) {
    try {
      // Continuing a folder needs no --part-size: the folder's is the one.
      partSize = readManifest(dir)?.partSize;
    } catch {
      // the folder's checks say what is wrong
    }
  }
  partSize = checkPartSize(partSize ?? DEFAULT_PART_SIZE);
  layers.forEach(checkLayerForFiles);
  const sources = listSources(inputs);
  checkVideoTools(sources);
  const sha256 = await sha256File(model);
  return makeManifest(
    { path: model, sha256 },
    layers,
    options,
    partSize,
    sources.map((s) => s.path),
  );
}

/** Runs the parts of this shard that are not complete yet; the folder's manifest is written once the model has loaded. */
export async function extractToFolder(model: string, inputs: readonly string[], options: FolderOptions): Promise<FolderResult> {
  const warn = options.warn ?? ((line: string) => process.stderr.write(`${line}\n`));
  const wanted = await plannedManifest(model, inputs, options.layer, partOptions(options), options.partSize, options.dir);
  // A shard finds the manifest that another shard wrote: the same extraction, not a folder in use.
  const { existing, created } = prepareFolder(options.dir, wanted, options.resume || options.shard !== undefined);
  const mine = shardParts(wanted.parts, options.shard);
  const states = new Map<string, PartState>();
  if (existing && options.resume) for (const part of mine) states.set(part.name, partState(options.dir, existing, part));
  const todo = mine.filter((part) => !states.get(part.name)?.complete);
  for (const part of todo) {
    const state = states.get(part.name);
    if (state && !state.complete && !state.missing)
      warn(`libtorch-features: ${part.name} is damaged (${state.reason}): extracting it again`);
  }
  const result: FolderResult = {
    parts: wanted.parts.length,
    mine: mine.length,
    complete: mine.length - todo.length,
    written: 0,
    rows: 0,
    skipped: 0,
  };
  let manifest = existing;
  let ex: Extractor<string[]> | undefined;
  let progress: ReturnType<typeof createProgress> | undefined;
  let finished = false;
  try {
    if (todo.length === 0) {
      if (!manifest) manifest = writeManifest(options.dir, wanted); // a shard with no parts still leaves the folder described
      return result;
    }
    ex = await Extractor.create(model, options.layer, extractorOptions(options));
    manifest ??= writeManifest(options.dir, wanted);
    const sources = todo.flatMap((part) => partSources(manifest!, part));
    progress = createProgress(estimateRows(sources, options.fps), { quiet: options.quiet });
    const bar = progress;
    for (const part of todo) {
      if (options.signal.aborted) break;
      try {
        const { rows, skipped } = await runPart(ex, manifest, options.dir, part, {
          signal: options.signal,
          warn,
          tick: (n) => bar.tick(n),
        });
        result.rows += rows;
        result.skipped += skipped;
        result.written++;
      } catch (error) {
        if (options.signal.aborted) break;
        throw error;
      }
    }
    if (options.signal.aborted) {
      const done = result.complete + result.written;
      throw new CliError(
        `interrupted: ${done} of ${mine.length} parts complete in ${options.dir}, the part in flight discarded (--resume continues)`,
        130,
      );
    }
    finished = true;
    return result;
  } finally {
    progress?.stop(finished);
    ex?.dispose();
    // A folder this run created and left without a manifest (the model failed to load) goes again,
    // unless another process (a shard) wrote into it meanwhile.
    if (created && !manifest) {
      try {
        fs.rmdirSync(options.dir);
      } catch {
        // not empty: another process's
      }
    }
  }
}

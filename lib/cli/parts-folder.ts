/**
 * The folder of parts on disk: preparing it (checked before the model loads, the manifest written
 * once and exclusively, after the model loaded), telling a complete part from a missing or damaged
 * one, and writing one part. A part's files are written to temporaries and renamed when complete,
 * its index last: a process killed mid-part leaves only hidden `.partial` files, never a part
 * that looks complete (see outputs.ts).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Extractor } from '../extractor';
import { CliError, PartsError, oneLine } from './errors';
import { INDEX_HEADER, writeFeatures } from './feature-writer';
import { parseIndex, type IndexRow } from './index-csv';
import { NpyWriter, readNpyHeader } from './npy';
import { Outputs, writeAll } from './outputs';
import { MANIFEST_FILE, type Manifest, type PartInfo, inputPath, mismatch, partFiles, readManifest } from './parts-manifest';
import { type Source, kindOf } from './sources';

/** Hidden temporaries of a process writing there (outputs.ts names them so): not the folder's content. */
export const isTemporary = (name: string): boolean => name.startsWith('.') && name.endsWith('.partial');

/**
 * Checks that `dir` can hold the extraction `wanted`, before any work: creates it when missing
 * (its parent must exist), and returns the manifest already there, if any. A folder that holds
 * another extraction is MANIFEST_MISMATCH; the same extraction without `reuse` (--resume, a shard,
 * the queue) is FOLDER_IN_USE, as is a folder of other files.
 */
export function prepareFolder(dir: string, wanted: Manifest, reuse: boolean): { existing?: Manifest; created: boolean } {
  let created = false;
  let stat: fs.Stats | undefined;
  try {
    // Without a trailing slash, which would make a file there ENOTDIR rather than a file.
    stat = fs.statSync(dir.replace(/(?<=.)[\\/]+$/, ''));
  } catch {
    // created below
  }
  if (stat && !stat.isDirectory()) throw new CliError(`cannot write parts to ${dir}: it is a file, not a folder`);
  if (!stat) {
    try {
      fs.mkdirSync(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? `no such folder ${path.dirname(path.resolve(dir))}` : oneLine((error as Error).message);
      throw new CliError(`cannot write parts to ${dir}: ${why}`);
    }
    created = true;
  }
  const existing = readManifest(dir);
  if (existing) {
    const why = mismatch(existing, wanted);
    if (why) throw new PartsError('MANIFEST_MISMATCH', `${dir} holds an extraction made with ${why}; use another folder`);
    if (!reuse)
      throw new PartsError('FOLDER_IN_USE', `${dir} already holds this extraction: add --resume to continue it, or use another folder`);
    return { existing, created };
  }
  const others = fs.readdirSync(dir).filter((name) => !isTemporary(name));
  if (others.length > 0) {
    throw new PartsError(
      'FOLDER_IN_USE',
      `${dir} holds files (${others.sort()[0]}, ...) but no ${MANIFEST_FILE}: give an empty or new folder`,
    );
  }
  return { created };
}

/**
 * Writes the manifest exclusively: a temporary file linked to manifest.json, which fails when
 * another process (a shard started at the same time) linked its own first; that one is then
 * checked like any existing manifest. Returns the manifest now in the folder.
 */
export function writeManifest(dir: string, manifest: Manifest): Manifest {
  const file = path.join(dir, MANIFEST_FILE);
  const temp = path.join(dir, `.${MANIFEST_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.partial`);
  try {
    fs.writeFileSync(temp, `${JSON.stringify(manifest, null, 1)}\n`, { flag: 'wx' });
    fs.linkSync(temp, file);
    return manifest;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.existsSync(file)) {
      throw new CliError(`cannot write ${file}: ${oneLine((error as Error).message)}`);
    }
    return prepareFolder(dir, manifest, true).existing!;
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

/** A part that is complete: its rows and, per layer, the shape of its .npy. */
export interface CompletePart {
  complete: true;
  rows: number;
  shapes: number[][];
  index: IndexRow[];
}

/** What a part's files hold: complete, missing (not written, or not finished), or damaged (with why). */
export type PartState = CompletePart | { complete: false; missing: boolean; reason: string };

/** Checks that the index lists the part's inputs in order: each image once (unless skipped), each video's frames 0, 1, 2... */
function indexProblem(manifest: Manifest, part: PartInfo, rows: readonly IndexRow[]): string | undefined {
  const end = part.first + part.count;
  const skippable = manifest.options.skipUnreadable;
  let k = part.first;
  let frame = -1; // the last frame listed of inputs[k], a video
  for (const row of rows) {
    for (;;) {
      if (k >= end) return `row ${row.row} (${row.source}) is not the next input of this part`;
      const input = manifest.inputs[k];
      const video = kindOf(input) === 'video';
      // A video's frames continue, or the same video listed again starts over at frame 0.
      if (row.source === input && (!video || row.frame === String(frame + 1))) break;
      if (!video && !skippable) return `input ${input} has no row`;
      k++;
      frame = -1;
    }
    if (kindOf(manifest.inputs[k]) === 'image') {
      if (row.frame !== '') return `row ${row.row}: an image with a frame number`;
      k++;
    } else {
      frame++;
      if (row.time !== (frame / manifest.options.fps).toFixed(3)) return `row ${row.row}: frame ${frame} at ${row.time} s`;
    }
  }
  if (frame >= 0) k++;
  for (; k < end; k++) {
    if (kindOf(manifest.inputs[k]) === 'image' && !skippable) return `input ${manifest.inputs[k]} has no row`;
  }
  return undefined;
}

/** Reads what a part's files hold and checks them against the manifest; never throws for their content. */
export function partState(dir: string, manifest: Manifest, part: PartInfo): PartState {
  const files = partFiles(dir, manifest.layers, part);
  const present = files.filter((file) => fs.existsSync(file));
  if (present.length < files.length) {
    const absent = files.find((file) => !present.includes(file))!;
    return { complete: false, missing: true, reason: present.length === 0 ? 'not written' : `${path.basename(absent)} is missing` };
  }
  const damaged = (file: string, why: string): PartState => ({ complete: false, missing: false, reason: `${path.basename(file)}: ${why}` });
  const shapes: number[][] = [];
  for (const file of files.slice(0, -1)) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(file, 'r');
      shapes.push(readNpyHeader(fd).shape);
    } catch (error) {
      return damaged(file, oneLine((error as Error).message));
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
  const rows = shapes[0][0];
  const layer = shapes.findIndex((shape) => shape[0] !== rows);
  if (layer >= 0) return damaged(files[layer], `${shapes[layer][0]} rows where ${path.basename(files[0])} holds ${rows}`);
  const indexFile = files[files.length - 1];
  let index: IndexRow[];
  try {
    index = parseIndex(fs.readFileSync(indexFile, 'utf8'));
  } catch (error) {
    return damaged(indexFile, oneLine((error as Error).message));
  }
  if (index.length !== rows) return damaged(indexFile, `${index.length} rows where the .npy holds ${rows}`);
  const why = indexProblem(manifest, part, index);
  if (why) return damaged(indexFile, why);
  return { complete: true, rows, shapes, index };
}

/** The sources of a part: read from the manifest's base, named in the index as listed. */
export function partSources(manifest: Manifest, part: PartInfo): Source[] {
  return manifest.inputs.slice(part.first, part.first + part.count).map((input) => ({
    kind: kindOf(input)!,
    path: inputPath(manifest, input),
    name: input,
  }));
}

export interface RunPartOptions {
  /** Stops after the batch in flight: the part is discarded and the call throws an interrupted CliError. */
  signal: AbortSignal;
  warn: (line: string) => void;
  tick: (count: number) => void;
}

/** Extracts one part with an extractor of the manifest's model and layers; its files appear only when it is complete. */
export async function runPart(
  extractor: Extractor<string[]>,
  manifest: Manifest,
  dir: string,
  part: PartInfo,
  options: RunPartOptions,
): Promise<{ rows: number; skipped: number }> {
  const outputs = new Outputs(partFiles(dir, manifest.layers, part));
  try {
    const writers = outputs.fds.slice(0, -1).map((fd, i) => new NpyWriter(fd, outputs.finals[i]));
    const index = outputs.fds[outputs.fds.length - 1];
    writeAll(index, Buffer.from(INDEX_HEADER));
    const result = await writeFeatures(extractor, partSources(manifest, part), writers, index, {
      layers: manifest.layers,
      batch: manifest.options.batch,
      fps: manifest.options.fps,
      skipUnreadable: manifest.options.skipUnreadable,
      ...options,
    });
    if (options.signal.aborted) throw new CliError(`interrupted: ${part.name} was discarded`, 130);
    writers.forEach((w) => w.finish());
    outputs.commit();
    return result;
  } finally {
    outputs.discard();
  }
}

/**
 * `libtorch-features merge DIR --out features.npy`: the parts of a folder as one .npy per layer and
 * one index, in input order: what a single `extract` of the same inputs writes (the same bytes when
 * the parts ran the same batches, see README "More than one machine"). Every part is checked
 * before anything is written; a missing or damaged one is an error naming it.
 */
import * as fs from 'node:fs';
import { setImmediate } from 'node:timers/promises';

import { CliError, PartsError } from './errors';
import { indexPath, outputPaths } from './extract';
import { INDEX_HEADER, csvField } from './feature-writer';
import { npyHeader, readNpyHeader } from './npy';
import { Outputs, writeAll } from './outputs';
import { type PartState, partState } from './parts-folder';
import { type Manifest, MANIFEST_FILE, type PartInfo, partFiles, readManifest } from './parts-manifest';

// Bytes copied at a time: large enough for the disk, small enough to let Ctrl-C in between.
const CHUNK_BYTES = 8 << 20;

function listNames(parts: readonly PartInfo[]): string {
  const shown = parts.slice(0, 3).map((p) => p.name);
  return parts.length > 3 ? `${shown.join(', ')} and ${parts.length - 3} more` : shown.join(', ');
}

/** Checks every part; returns the rows of each and the row shape of each layer. Throws PART_MISSING or PART_DAMAGED. */
function checkParts(dir: string, manifest: Manifest): { rows: number[]; rowShapes: (number[] | undefined)[] } {
  const states = manifest.parts.map((part) => partState(dir, manifest, part));
  const missing = manifest.parts.filter((_, i) => !states[i].complete && (states[i] as { missing: boolean }).missing);
  if (missing.length > 0) {
    const first = states[manifest.parts.indexOf(missing[0])] as Extract<PartState, { complete: false }>;
    throw new PartsError(
      'PART_MISSING',
      `${listNames(missing)} missing in ${dir} (${missing.length} of ${manifest.parts.length} parts${first.reason === 'not written' ? '' : `; ${missing[0].name}: ${first.reason}`}): finish the extraction first (extract --resume, or queue work)`,
    );
  }
  const damaged = states.findIndex((state) => !state.complete);
  if (damaged >= 0) {
    const state = states[damaged] as Extract<PartState, { complete: false }>;
    throw new PartsError(
      'PART_DAMAGED',
      `${manifest.parts[damaged].name} in ${dir} is damaged: ${state.reason}; delete its files and extract it again (extract --resume)`,
    );
  }
  const complete = states as Extract<PartState, { complete: true }>[];
  const rowShapes = manifest.layers.map((layer, l) => {
    let shape: number[] | undefined;
    let from = '';
    complete.forEach((state, i) => {
      if (state.rows === 0) return;
      const rowShape = state.shapes[l].slice(1);
      if (!shape) [shape, from] = [rowShape, manifest.parts[i].name];
      else if (rowShape.join() !== shape.join()) {
        throw new PartsError(
          'PART_DAMAGED',
          `${manifest.parts[i].name} in ${dir} holds rows of shape [${rowShape.join(', ')}] for ${layer} where ${from} holds [${shape.join(', ')}]`,
        );
      }
    });
    return shape;
  });
  return { rows: complete.map((s) => s.rows), rowShapes };
}

/** Appends the data of the .npy at `file` to `out`, after checking that it still has the shape checked before. */
async function copyRows(file: string, shape: number[] | undefined, rows: number, out: number): Promise<void> {
  const fd = fs.openSync(file, 'r');
  try {
    const info = readNpyHeader(fd);
    if (info.shape[0] !== rows || (rows > 0 && info.shape.slice(1).join() !== shape!.join())) {
      throw new PartsError('PART_DAMAGED', `${file} changed while merging (a worker wrote it again?); merge again`);
    }
    const chunk = Buffer.alloc(Math.min(CHUNK_BYTES, Math.max(info.dataBytes, 1)));
    for (let done = 0; done < info.dataBytes;) {
      const read = fs.readSync(fd, chunk, 0, Math.min(chunk.length, info.dataBytes - done), info.dataOffset + done);
      if (read === 0) throw new PartsError('PART_DAMAGED', `${file} ended early while merging; merge again`);
      writeAll(out, chunk.subarray(0, read));
      done += read;
      await setImmediate();
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Merges the folder's parts into `out` (out.<layer>.npy for several layers) and out.index.csv. */
export async function mergeFolder(dir: string, out: string): Promise<{ rows: number; parts: number; files: string[] }> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CliError(`no such folder: ${dir}`);
  const manifest = readManifest(dir);
  if (!manifest)
    throw new PartsError('MANIFEST_INVALID', `${dir} holds no ${MANIFEST_FILE}: not a folder that extract --out DIR/ or the queue wrote`);
  const { rows, rowShapes } = checkParts(dir, manifest);
  const total = rows.reduce((a, b) => a + b, 0);
  if (total === 0 && manifest.options.skipUnreadable) throw new CliError(`nothing to merge: every input in ${dir} was unreadable`);
  const outputs = new Outputs([...outputPaths(out, manifest.layers), indexPath(out)]);
  try {
    const index = outputs.fds[outputs.fds.length - 1];
    manifest.layers.forEach((_, l) => writeAll(outputs.fds[l], npyHeader(total === 0 ? [0] : [total, ...rowShapes[l]!])));
    writeAll(index, Buffer.from(INDEX_HEADER));
    let row = 0;
    for (const [i, part] of manifest.parts.entries()) {
      const files = partFiles(dir, manifest.layers, part);
      for (const [l] of manifest.layers.entries()) await copyRows(files[l], rowShapes[l], rows[i], outputs.fds[l]);
      // Checked again as it is copied: a part rewritten since the check is found out.
      const state = partState(dir, manifest, part);
      if (!state.complete || state.rows !== rows[i])
        throw new PartsError('PART_DAMAGED', `${part.name} in ${dir} changed while merging; merge again`);
      const lines = state.index.map((r) => `${row + r.row},${csvField(r.source)},${r.frame},${r.time}\n`);
      writeAll(index, Buffer.from(lines.join('')));
      row += rows[i];
    }
    outputs.commit();
    return { rows: total, parts: manifest.parts.length, files: [...outputs.finals] };
  } finally {
    outputs.discard();
  }
}

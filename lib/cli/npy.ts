/**
 * Writing NumPy .npy files (format version 1.0), float32 little-endian, C order, row by row, when
 * the number of rows is known only at the end: the header is written with room to spare and
 * rewritten on close. No maintained npm package writes .npy (npyjs only reads), and the format is
 * small: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 * Reading back only what this writer writes, for merge: the header, checked against the file size.
 */
import * as fs from 'node:fs';

import { writeAll } from './outputs';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00]); // \x93NUMPY v1.0
// The header (magic, length and dict) takes this many bytes: a multiple of 64, as NumPy aligns
// it, and room for any shape with a 20-digit row count.
const HEADER_BYTES = 256;

/** The .npy header for a float32 C-order array of `shape`, padded to HEADER_BYTES. */
export function npyHeader(shape: readonly number[]): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  const room = HEADER_BYTES - MAGIC.length - 2;
  if (dict.length + 1 > room) throw new Error(`shape ${shape.join('x')} is too long for an .npy header`);
  const text = Buffer.from(dict.padEnd(room - 1, ' ') + '\n', 'latin1');
  const length = Buffer.alloc(2);
  length.writeUInt16LE(text.length);
  return Buffer.concat([MAGIC, length, text]);
}

/**
 * Appends rows of a fixed shape to an .npy file open at `fd` (opened and closed by the caller);
 * finish() writes the final row count.
 */
export class NpyWriter {
  /** The output's name, for messages. */
  readonly path: string;
  #fd: number;
  #rowShape: number[] | undefined;
  #rows = 0;

  constructor(fd: number, path: string) {
    this.path = path;
    this.#fd = fd;
    writeAll(this.#fd, npyHeader([0]));
  }

  get rows(): number {
    return this.#rows;
  }

  /** Appends `count` rows held in `data` (row-major), each of shape `rowShape`. */
  append(data: Float32Array, rowShape: readonly number[], count: number): void {
    if (!this.#rowShape) this.#rowShape = [...rowShape];
    else if (this.#rowShape.join() !== rowShape.join()) {
      throw new Error(`rows of shape [${rowShape.join(', ')}] cannot follow rows of shape [${this.#rowShape.join(', ')}] in ${this.path}`);
    }
    // Float32Array values are in the machine's byte order: little-endian on every platform Node runs on.
    writeAll(this.#fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.#rows += count;
  }

  /** Writes the final header (the file stays open). */
  finish(): void {
    const header = npyHeader([this.#rows, ...(this.#rowShape ?? [])]);
    for (let done = 0; done < HEADER_BYTES;) done += fs.writeSync(this.#fd, header, done, HEADER_BYTES - done, done);
  }
}

/** What readNpyHeader found: the shape, where the data starts, and its size in bytes. */
export interface NpyInfo {
  shape: number[];
  dataOffset: number;
  dataBytes: number;
}

/**
 * Reads and checks the header of an .npy file this writer wrote (float32, C order, version 1.0)
 * and that the file holds exactly its data. Throws an Error saying what is wrong otherwise.
 */
export function readNpyHeader(fd: number): NpyInfo {
  const head = Buffer.alloc(HEADER_BYTES);
  const read = fs.readSync(fd, head, 0, HEADER_BYTES, 0);
  if (read < 10 || !head.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not an .npy file written by libtorch-features');
  const dataOffset = MAGIC.length + 2 + head.readUInt16LE(MAGIC.length);
  if (dataOffset !== HEADER_BYTES || read < HEADER_BYTES) throw new Error(`an .npy header of ${dataOffset} bytes, not ${HEADER_BYTES}`);
  const dict = head.subarray(MAGIC.length + 2, dataOffset).toString('latin1');
  const match = /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(((?:\d{1,15}, ?)*\d{1,15},?)\), \} *\n$/.exec(dict);
  if (!match) throw new Error('its header is not that of a float32 C-order array');
  const shape = match[1]
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean)
    .map(Number);
  const elements = shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(elements * 4)) throw new Error(`its shape [${shape.join(', ')}] is too large`);
  const dataBytes = elements * 4;
  const size = fs.fstatSync(fd).size;
  if (size !== dataOffset + dataBytes) {
    throw new Error(`it holds ${size - dataOffset} bytes of data where its shape [${shape.join(', ')}] needs ${dataBytes}`);
  }
  return { shape, dataOffset, dataBytes };
}

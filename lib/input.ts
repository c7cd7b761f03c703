/**
 * Validation of extract() inputs, before anything goes native: a Float32Array with its shape, or a
 * float32 ndarray (copied to row-major order when it is a strided view).
 */
import { ExtractorError } from './errors';
import { describe } from './options';
import type { ExtractInput } from './types';

/** What native forward() takes. */
export interface NormalizedInput {
  data: Float32Array;
  shape: number[];
}

/** The rank the models take: a batch of images, [N, C, H, W]. */
const RANK = 4;

function invalid(message: string): ExtractorError {
  return new ExtractorError('INVALID_INPUT', message);
}

function checkShape(shape: unknown): number[] {
  if (!Array.isArray(shape)) {
    throw invalid(`Expected an array [N, C, H, W] for shape but received ${describe(shape)}`);
  }
  if (shape.length !== RANK) {
    throw invalid(
      `Expected a shape of rank ${RANK} [N, C, H, W] but received rank ${shape.length} [${shape.join(', ')}]; ` +
        'use N = 1 for a single image',
    );
  }
  shape.forEach((dim, i) => {
    if (!Number.isSafeInteger(dim) || (dim as number) < 1) {
      throw invalid(`Expected a positive integer for shape[${i}] but received ${describe(dim)}`);
    }
  });
  return [...(shape as number[])];
}

function elementCount(shape: number[]): number {
  let count = 1;
  for (const dim of shape) {
    count *= dim;
    if (!Number.isSafeInteger(count)) throw invalid(`shape [${shape.join(', ')}] holds too many values`);
  }
  return count;
}

function isNdarray(input: object): input is ExtractInput & { stride: number[]; offset: number } {
  return 'stride' in input && 'offset' in input && Array.isArray((input as { stride: unknown }).stride);
}

/** Copies a strided float32 ndarray into a new row-major Float32Array. */
function packed(data: Float32Array, shape: number[], stride: number[], offset: number): Float32Array {
  const out = new Float32Array(elementCount(shape));
  const index = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < out.length; i++) {
    let at = offset;
    for (let d = 0; d < shape.length; d++) at += index[d] * stride[d];
    out[i] = data[at];
    for (let d = shape.length - 1; d >= 0 && ++index[d] === shape[d]; d--) index[d] = 0;
  }
  return out;
}

function isRowMajor(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/** Checks an extract() input and returns the row-major data and shape native code takes. */
export function normalizeInput(input: unknown): NormalizedInput {
  if (input === null || typeof input !== 'object') {
    throw invalid(`Expected { data: Float32Array, shape: [N, C, H, W] } or an ndarray for input but received ${describe(input)}`);
  }
  const { data } = input as { data?: unknown };
  if (!(data instanceof Float32Array)) {
    throw invalid(`Expected a Float32Array for input.data but received ${describe(data)}`);
  }
  const shape = checkShape((input as { shape?: unknown }).shape);
  const count = elementCount(shape);

  if (isNdarray(input)) {
    const { stride, offset } = input;
    if (offset === 0 && isRowMajor(shape, stride) && data.length >= count) {
      return { data: data.length === count ? data : data.subarray(0, count), shape };
    }
    return { data: packed(data, shape, stride, offset), shape };
  }
  if (data.length !== count) {
    throw invalid(`input.data has ${data.length} values but shape [${shape.join(', ')}] holds ${count}`);
  }
  return { data, shape };
}

/**
 * Validation of extract() inputs, before anything goes native: a Float32Array with its shape, or a
 * float32 ndarray (copied to row-major order when it is a strided view).
 */
import { types } from 'node:util';

import { ExtractorError } from './errors';
import { describe } from './options';
import { LIMITS } from './limits';
import type { ExtractInput, ImageInput } from './types';

/** What native forward() takes. */
export interface NormalizedInput {
  data: Float32Array;
  shape: number[];
}

/** What native forwardImages() takes. */
export interface NormalizedImages {
  images: ImageInput[];
}

// Far beyond any photo; keeps height x width x channels well inside safe integers.
const MAX_SIDE = LIMITS.maxImageSide;

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

/**
 * Checks an ndarray's stride and offset: integers, and every element the shape reaches inside the
 * data (a short array, or an offset past its end, would read undefined: NaN features).
 */
function checkStrides(
  input: { stride: unknown[]; offset: unknown },
  shape: number[],
  length: number,
): { stride: number[]; offset: number } {
  const stride = [...input.stride];
  const { offset } = input;
  if (stride.length !== shape.length || !stride.every((s) => Number.isSafeInteger(s))) {
    throw invalid(`Expected ${shape.length} integer strides for the ndarray but received [${stride.map(String).join(', ')}]`);
  }
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
    throw invalid(`Expected a non-negative integer offset for the ndarray but received ${describe(offset)}`);
  }
  let lowest = offset as number;
  let highest = offset as number;
  shape.forEach((dim, d) => {
    const span = (dim - 1) * (stride[d] as number);
    if (span < 0) lowest += span;
    else highest += span;
  });
  if (lowest < 0 || highest >= length) {
    throw invalid(
      `the ndarray reaches elements ${lowest} to ${highest} of its data, which holds ${length} values ` +
        `(shape [${shape.join(', ')}], stride [${stride.join(', ')}], offset ${offset})`,
    );
  }
  return { stride: stride as number[], offset: offset as number };
}

/** describe(), saying so when a value passes for a typed array without being one (a Proxy). */
function describeData(data: unknown): string {
  return types.isProxy(data) ? 'a Proxy (give the typed array itself)' : describe(data);
}

function isRowMajor(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

function isImage(input: unknown): boolean {
  return input !== null && typeof input === 'object' && 'width' in input && 'height' in input;
}

function checkImage(image: unknown, what: string): ImageInput {
  if (!isImage(image)) {
    throw invalid(`Expected { data: Uint8Array, width, height, channels } for ${what} but received ${describe(image)}`);
  }
  const { data, width, height, channels } = image as Record<string, unknown>;
  // util.types, not instanceof: a Proxy of a typed array passes instanceof but is no typed array.
  if (!types.isUint8Array(data) && !types.isUint8ClampedArray(data)) {
    throw invalid(`Expected a Uint8Array or Uint8ClampedArray for ${what}.data but received ${describeData(data)}`);
  }
  for (const [name, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > MAX_SIDE) {
      throw invalid(`Expected an integer from 1 to ${MAX_SIDE} for ${what}.${name} but received ${describe(value)}`);
    }
  }
  if (channels !== 3 && channels !== 4) {
    throw invalid(`Expected 3 (RGB) or 4 (RGBA) for ${what}.channels but received ${describe(channels)}`);
  }
  const expected = (width as number) * (height as number) * channels;
  if (data.length !== expected) {
    throw invalid(`${what}.data has ${data.length} bytes but ${width}x${height}x${channels} needs ${expected}`);
  }
  return { data, width: width as number, height: height as number, channels };
}

/**
 * Checks an extract() input: images (one, or an array) are returned as such, for preprocessing
 * natively; tensors as row-major data and shape.
 */
export function normalizeAnyInput(input: unknown): NormalizedInput | NormalizedImages {
  if (Array.isArray(input)) {
    if (input.length === 0) throw invalid('Expected at least one image but received an empty array');
    return { images: input.map((image, i) => checkImage(image, `input[${i}]`)) };
  }
  if (isImage(input)) return { images: [checkImage(input, 'input')] };
  return normalizeInput(input);
}

/** Checks a tensor input and returns the row-major data and shape native code takes. */
export function normalizeInput(input: unknown): NormalizedInput {
  if (input === null || typeof input !== 'object') {
    throw invalid(`Expected { data: Float32Array, shape: [N, C, H, W] }, an ndarray or images for input but received ${describe(input)}`);
  }
  const { data } = input as { data?: unknown };
  if (!types.isFloat32Array(data)) {
    throw invalid(`Expected a Float32Array for input.data but received ${describeData(data)}`);
  }
  const shape = checkShape((input as { shape?: unknown }).shape);
  const count = elementCount(shape);

  if (isNdarray(input)) {
    const { stride, offset } = checkStrides(input, shape, data.length);
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

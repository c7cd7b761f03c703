/** Fixtures made by scripts/make-fixtures.py (PyTorch's own numbers) and small test helpers. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Extractor } from '../lib';

export const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures');

/** A tensor file in the manifest. */
export interface TensorFile {
  file: string;
  shape: number[];
}

interface Case {
  input: TensorFile;
  outputs: Record<string, TensorFile>;
  modelOutput: TensorFile;
}

/** manifest.json, as scripts/make-fixtures.py writes it. */
export interface Manifest {
  torch: string;
  resnet18: {
    file: string;
    layers: { name: string; type: string }[];
    parameterCounts: Record<string, number>;
    cases: { batch4: Case; nonsquare: Case };
    chainLayers: string[];
  };
  chain: {
    file: string;
    layers: { name: string; type: string }[];
    input: TensorFile;
    outputs: Record<string, TensorFile>;
    callOrder: string[];
  };
}

export const manifest: Manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8'));
export const RESNET18 = path.join(FIXTURES, manifest.resnet18.file);
export const CHAIN = path.join(FIXTURES, manifest.chain.file);

/** Float32 CPU results must match PyTorch within this max-abs error. */
export const CPU_TOLERANCE = 1e-4;
/** CUDA results (other kernels, TF32 off by default in LibTorch for convolutions) against CPU. */
export const CUDA_TOLERANCE = 1e-3;

/** Reads a raw float32 tensor written by the fixtures script (copied, so always aligned). */
export function readTensor(tensor: TensorFile): { data: Float32Array; shape: number[] } {
  const bytes = fs.readFileSync(path.join(FIXTURES, tensor.file));
  const data = new Float32Array(new Uint8Array(bytes).buffer);
  return { data, shape: tensor.shape };
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'tensors differ in length');
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= max)) max = d; // NaN propagates as a failure
  }
  return max;
}

/** Asserts that `actual` equals PyTorch's `expected` within `tolerance`. */
export function assertClose(
  actual: { data: Float32Array; shape: readonly number[] },
  expected: { data: Float32Array; shape: readonly number[] },
  tolerance: number,
  what: string,
): void {
  assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  const diff = maxAbsDiff(actual.data, expected.data);
  assert.ok(diff <= tolerance, `${what}: max-abs error ${diff} exceeds ${tolerance}`);
}

/** Why CUDA tests are skipped here, or false when they can run. */
export function cudaSkipReason(): string | false {
  const runtime = Extractor.runtime();
  return runtime.cudaAvailable ? false : `no CUDA device visible to LibTorch ${runtime.torchVersion}`;
}

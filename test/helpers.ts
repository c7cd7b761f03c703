/** Fixtures made by scripts/make-fixtures.py (PyTorch's own numbers) and small test helpers. */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Extractor, ExtractorError } from '../lib';

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

/** A torchvision architecture with PyTorch's outputs at its top-level children and nested names. */
export interface Architecture extends Case {
  file: string;
  layers: { name: string; type: string }[];
  parameterCounts: Record<string, number>;
  nested: string[];
  /** torchvision's get_graph_node_names (eval) that are calls of leaf modules. */
  leafCalls: string[];
}

interface SummaryRowFixture {
  type: string;
  outputShape: number[];
  parameters: number;
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
    nested: string[];
    leafCalls: string[];
    pooled: Record<'avg' | 'max' | 'avgL2' | 'mapL2', TensorFile>;
    summary: { inputShape: number[]; rows: SummaryRowFixture[] };
  };
  mobilenet_v2: Architecture;
  densenet121: Architecture;
  efficientnet_b0: Architecture;
  mobilenet_v3_small: Architecture;
  identity: { file: string; layer: string };
  branchy: { file: string };
  broadcastResidual: { file: string; input: TensorFile; outputs: Record<'act', TensorFile> };
  winogradBlocks: {
    file: string;
    cases: Record<
      'tiles120' | 'tiles9' | 'tiles1520',
      { input: TensorFile; outputs: Record<'a' | 'b' | 'c' | 'd' | 'g' | 'e' | 'out', TensorFile> }
    >;
  };
  bad: Record<
    | 'stateDict'
    | 'pickledModule'
    | 'truncated'
    | 'notTorchScript'
    | 'readsFile'
    | 'twoOutputs'
    | 'memoryBomb'
    | 'deepCondition'
    | 'setstateWrites'
    | 'shortRecord'
    | 'spin',
    string
  >;
  preprocess: {
    images: TensorFile[];
    pil: TensorFile;
    tensor: TensorFile;
    custom: { options: Record<string, unknown>; expected: TensorFile };
    unnormalized: { options: Record<string, unknown>; expected: TensorFile };
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
export const IDENTITY = path.join(FIXTURES, manifest.identity.file);
export const fixture = (file: string) => path.join(FIXTURES, file);

/**
 * Float32 CPU results must match PyTorch within this max-abs error, scaled by the largest value
 * of the reference where it exceeds 1. TorchScript and eager PyTorch run the same kernels but not
 * always in the same order: in PyTorch itself, MobileNetV2's scripted features differ from the
 * eager ones by 1e-4 where values reach 6.
 */
export const CPU_TOLERANCE = 1e-4;
/** CUDA results (other kernels; float32 stays float32: this package keeps TF32 off unless `tf32: true`) against CPU. */
export const CUDA_TOLERANCE = 1e-3;

/** Reads a raw uint8 image [H, W, C] written by the fixtures script. */
export function readImage(image: TensorFile): { data: Uint8Array; height: number; width: number; channels: 3 | 4 } {
  const [height, width, channels] = image.shape;
  return { data: new Uint8Array(fs.readFileSync(path.join(FIXTURES, image.file))), height, width, channels: channels as 3 | 4 };
}

/** Reads a raw float32 tensor written by the fixtures script (copied, so always aligned). */
export function readTensor(tensor: TensorFile): { data: Float32Array; shape: number[] } {
  const bytes = fs.readFileSync(path.join(FIXTURES, tensor.file));
  const data = new Float32Array(new Uint8Array(bytes).buffer);
  return { data, shape: tensor.shape };
}

export function maxAbs(a: Float32Array): number {
  let max = 0;
  for (const v of a) max = Math.max(max, Math.abs(v));
  return max;
}

export function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
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
  const allowed = tolerance * Math.max(1, maxAbs(expected.data));
  assert.ok(diff <= allowed, `${what}: max-abs error ${diff} exceeds ${allowed}`);
}

/** Why CUDA tests are skipped here, or false when they can run. */
export function cudaSkipReason(): string | false {
  const runtime = Extractor.runtime();
  return runtime.cudaAvailable ? false : `no CUDA device visible to LibTorch ${runtime.torchVersion}`;
}

/** An assert.throws / assert.rejects validator: an ExtractorError with this code and message. */
export function expectError(code: string, message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof ExtractorError, `expected an ExtractorError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
}

/** An .npy file's shape and float32 values (the header format NumPy writes and reads). */
export function readNpy(file: string): { shape: number[]; data: Float32Array } {
  const bytes = fs.readFileSync(file);
  const length = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + length).toString('latin1');
  const shape = /'shape': \(([^)]*)\)/
    .exec(header)![1]
    .split(',')
    .filter((d) => d.trim() !== '')
    .map(Number);
  return { shape, data: new Float32Array(new Uint8Array(bytes.subarray(10 + length)).buffer) };
}

/** Writes a 160x120 ffmpeg test-pattern video of `seconds` at 10 frames per second to `file`. */
export function makeTestVideo(file: string, seconds: number): void {
  const make = spawnSync('ffmpeg', [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    `testsrc=duration=${seconds}:size=160x120:rate=10`,
    '-pix_fmt',
    'yuv420p',
    file,
  ]);
  assert.equal(make.status, 0, String(make.stderr));
}

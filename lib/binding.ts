/**
 * The native addon's interface, and the only place that loads it (through node-gyp-build, which
 * looks in prebuilds/ and then build/Release). Loaded on first use, so that importing the package
 * for its types never fails.
 */
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';

import { ExtractorError } from './errors';
import type { OneDnnCaches, OptimizationReport } from './types';

/** A layer as the addon reports it. */
export interface NativeLayer {
  name: string;
  type: string;
  kind?: 'module' | 'function' | 'parameter' | 'input';
}

/** What NativeExtractor.describe() returns. */
export interface NativeDescription {
  device: string;
  outputs: string[];
  kept: string[];
  layers: NativeLayer[];
  parameterCount: number;
  strategy: 'sequential' | 'graph';
  optimization: OptimizationReport;
}

/** A tensor crossing the boundary: row-major float32 values and their shape. */
export interface NativeTensor {
  data: Float32Array;
  shape: number[];
}

/** An image crossing the boundary (lib/input.ts has checked it). */
export interface NativeImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: number;
}

/** The options native load() takes, complete and normalised by lib/options.ts. */
export interface NativeOptions {
  device: string;
  dtype: 'float32' | 'float16' | 'bfloat16';
  channelsLast: boolean;
  pool: '' | 'avg' | 'max';
  normalize: '' | 'l2';
  optimize: boolean;
  winograd: boolean;
  tf32: boolean;
  threads: number;
  allowUnsafeOperations: boolean;
  maxBatch: number;
  maxQueue: number;
  preprocess: { resize: number; crop: number; mean: number[] | null; std: number[] | null } | null;
}

/** A row of native summarize(). */
export interface NativeSummaryRow {
  name: string;
  type: string;
  outputShape: number[];
  parameters: number;
}

/** The object that owns a cut model (native/binding/native_extractor.h). */
export interface NativeExtractor {
  describe(): NativeDescription;
  forwardSync(data: Float32Array, shape: number[]): NativeTensor[];
  forward(data: Float32Array, shape: number[], id: number): Promise<NativeTensor[]>;
  forwardImagesSync(images: NativeImage[]): NativeTensor[];
  forwardImages(images: NativeImage[], id: number): Promise<NativeTensor[]>;
  /** Removes the queued call `id` (its promise rejects with ABORTED); false once it has started. */
  cancel(id: number): boolean;
  /** Calls waiting, not counting the one running. */
  waiting(): number;
  optimization(): OptimizationReport;
  dispose(): void;
}

/** What this binary was built against and sees. */
export interface NativeRuntime {
  torchVersion: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  onednnFusion: boolean;
  pointwiseFusion: boolean;
  winograd: boolean;
  onednnCaches: OneDnnCaches;
}

/** The addon's exports (native/binding/addon.cc). */
export interface Binding {
  load(source: string | Uint8Array, layers: string[], options: NativeOptions): NativeExtractor;
  loadAsync(source: string | Uint8Array, layers: string[], options: NativeOptions): Promise<NativeExtractor>;
  listLayers(source: string | Uint8Array, nested: boolean, allowUnsafeOperations: boolean): NativeLayer[];
  summarize(
    source: string | Uint8Array,
    layers: string[],
    inputShape: number[],
    allowUnsafeOperations: boolean,
  ): { rows: NativeSummaryRow[]; outputShapes: number[][]; totalParameters: number };
  runtime(): NativeRuntime;
  /** The main thread's process is exiting with `code`: no forward starts any more (native/runtime/forward_queue.h). */
  prepareExit(code: number): void;
  /** Tests only: throws one kind of C++ exception through the chokepoint (native/binding/test_hooks.cc). */
  _testThrow(kind: string, async: boolean): Promise<void> | undefined;
  _testOptimizeTolerance(tolerance: number | null): void;
  /** Tests only: the per-core cache sizes read from replayed CPUID registers (native/runtime/onednn_caches.h). */
  _testCpuidCaches(vendor: string, registers: Record<string, number[]>): number[];
  /** Tests only: LibTorch's intra-op thread count on the calling thread (native/runtime/process_settings.h). */
  _testThreadsHere(): number;
}

const PACKAGE_ROOT = path.join(__dirname, '..', '..');

let binding: Binding | undefined;

// Once per thread that loads the addon: the addon switched oneDNN off (native/runtime/onednn_caches.h).
function warnIfOneDnnIsOff(loaded: Binding): void {
  const caches = loaded.runtime().onednnCaches;
  if (caches.usable) return;
  process.emitWarning(`libtorch-features: oneDNN is off for this process: ${caches.reason}`, {
    code: 'LTF_ONEDNN_CACHES',
    detail:
      "Convolutions run on LibTorch's own kernels (correct, slower) and optimize skips " +
      'optimize_for_inference. Where LibTorch uses a shared libdnnl (Debian, conda), preload the ' +
      "package's cpu_caches.so to give oneDNN this CPU's cache sizes: see README, \"CPUs that hide " +
      'their caches".',
  });
}

/** The addon, loaded once. Throws ExtractorError ADDON_LOAD_FAILED with what to do. */
export function getBinding(): Binding {
  if (binding) return binding;
  try {
    // LIBTORCH_FEATURES_BINARY names a .node to load instead (the sanitizer build of scripts/test-asan).
    const explicit = process.env.LIBTORCH_FEATURES_BINARY;
    const load = require('node-gyp-build') as (dir: string) => Binding;
    binding = explicit ? (require(path.resolve(explicit)) as Binding) : load(PACKAGE_ROOT);
    // No forward may run while exit() takes LibTorch down (native/runtime/forward_queue.h).
    const loaded = binding;
    if (isMainThread) process.on('exit', (code) => loaded.prepareExit(typeof code === 'number' ? code : 0));
    warnIfOneDnnIsOff(loaded);
    return binding;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new ExtractorError(
      'ADDON_LOAD_FAILED',
      `the libtorch-features native addon could not be loaded (${reason}). ` +
        'Build it with `npm rebuild libtorch-features` (npm 11 blocks install scripts of ' +
        'dependencies: run `npm install-scripts approve libtorch-features` first, or build in ' +
        'the package folder with `node scripts/build-native --force`). If LibTorch moved since the ' +
        'build, set LIBTORCH and rebuild.',
      { cause: error },
    );
  }
}

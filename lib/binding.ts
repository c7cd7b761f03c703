/**
 * The native addon's interface, and the only place that loads it (through node-gyp-build, which
 * looks in prebuilds/ and then build/Release). Loaded on first use, so that importing the package
 * for its types never fails.
 */
import * as path from 'node:path';

import { ExtractorError } from './errors';

/** A top-level child as the addon reports it. */
export interface NativeLayer {
  name: string;
  type: string;
}

/** What NativeExtractor.describe() returns. */
export interface NativeDescription {
  device: string;
  layer: string;
  kept: string[];
  layers: NativeLayer[];
  parameterCount: number;
}

/** A tensor crossing the boundary: row-major float32 values and their shape. */
export interface NativeTensor {
  data: Float32Array;
  shape: number[];
}

/** The object that owns a cut model (native/native_extractor.h). */
export interface NativeExtractor {
  describe(): NativeDescription;
  forwardSync(data: Float32Array, shape: number[]): NativeTensor;
  forward(data: Float32Array, shape: number[]): Promise<NativeTensor>;
  dispose(): void;
}

/** What this binary was built against and sees. */
export interface NativeRuntime {
  torchVersion: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
}

/** The addon's exports (native/addon.cc). */
export interface Binding {
  load(path: string, layer: string, device: string): NativeExtractor;
  loadAsync(path: string, layer: string, device: string): Promise<NativeExtractor>;
  listLayers(path: string): NativeLayer[];
  runtime(): NativeRuntime;
}

const PACKAGE_ROOT = path.join(__dirname, '..', '..');

let binding: Binding | undefined;

/** The addon, loaded once. Throws ExtractorError ADDON_LOAD_FAILED with what to do. */
export function getBinding(): Binding {
  if (binding) return binding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => Binding;
    binding = load(PACKAGE_ROOT);
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

/** Public types of libtorch-features. */
import type { NdArray } from 'ndarray';

/**
 * Where an extractor runs. `'auto'` (the default) takes CUDA device 0 when LibTorch sees a GPU and
 * the CPU otherwise; an explicit CUDA device that is not there is an error (`DEVICE_UNAVAILABLE`).
 */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;

/** Options of {@link Extractor}. */
export interface ExtractorOptions {
  /** Where to run: see {@link Device}. Default `'auto'`. */
  device?: Device;
}

/** A top-level child of the model, as `named_children()` lists it. */
export interface LayerInfo {
  /** Its position among the children, from 0. */
  index: number;
  /** Its attribute name: `'layer4'`. */
  name: string;
  /** Its class name: `'Sequential'`, `'Conv2d'`. */
  type: string;
}

/** A float32 tensor given as row-major values and a shape `[N, C, H, W]`. */
export interface TensorInput {
  data: Float32Array;
  shape: readonly number[];
}

/** What {@link Extractor.extract} takes: a {@link TensorInput} or a float32 ndarray. */
export type ExtractInput = TensorInput | NdArray<Float32Array>;

/** What the addon was built against and sees now. */
export interface RuntimeInfo {
  /** LibTorch's version: `'1.13.0'`. */
  torchVersion: string;
  /** Whether LibTorch sees a CUDA device. */
  cudaAvailable: boolean;
  /** How many CUDA devices it sees. */
  cudaDeviceCount: number;
}

/** Public types of libtorch-features. */
import type { NdArray } from 'ndarray';

import type { FeatureTensor } from './feature-tensor';

/**
 * Where an extractor runs. `'auto'` (the default) takes CUDA device 0 when LibTorch sees a GPU and
 * the CPU otherwise; an explicit CUDA device that is not there is an error (`DEVICE_UNAVAILABLE`).
 */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;

/** A TorchScript model: a path to its file, or its bytes (a Buffer or Uint8Array). */
export type ModelSource = string | Uint8Array;

/**
 * The layers to cut at: one name (`'layer4'`, `'layer3.1.conv2'`), several (`['layer2', 'layer4']`),
 * or several renamed (`{ layer2: 'mid', layer4: 'deep' }`, like torchvision's IntermediateLayerGetter).
 */
export type LayerSpec = string | readonly string[] | Readonly<Record<string, string>>;

/** What `extract()` gives for a {@link LayerSpec}: one tensor, or a record of them by (new) name. */
export type Features<L extends LayerSpec> = L extends string
  ? FeatureTensor
  : L extends readonly (infer K)[]
    ? Record<K & string, FeatureTensor>
    : L extends Readonly<Record<string, infer V>>
      ? Record<V & string, FeatureTensor>
      : never;

/**
 * How images are turned into the model's input, on the extractor's device: torchvision's
 * `Resize(resize)`, `CenterCrop(crop)`, `ToTensor()`, `Normalize(mean, std)`.
 */
export interface PreprocessOptions {
  /** The shorter side after resizing (bilinear, antialiased); `false`: no resize. Default 256. */
  resize?: number | false;
  /** The side of the centre square kept; `false`: no crop. Default 224. */
  crop?: number | false;
  /** Per-channel mean (RGB) subtracted after scaling to [0, 1]; `false`: no normalisation. Default ImageNet's. */
  mean?: readonly [number, number, number] | false;
  /** Per-channel standard deviation (RGB). Default ImageNet's. */
  std?: readonly [number, number, number];
}

/** Options of {@link Extractor}. */
export interface ExtractorOptions {
  /** Where to run: see {@link Device}. Default `'auto'`. */
  device?: Device;
  /**
   * The precision of the computation. Results always come back as Float32Array. `'float16'` needs
   * CUDA; `'bfloat16'` runs on CUDA and on the CPU. Default `'float32'`.
   */
  dtype?: 'float32' | 'float16' | 'bfloat16';
  /** Run convolutions in the channels-last (NHWC) layout, faster with cuDNN tensor cores. Default false. */
  channelsLast?: boolean;
  /** Pool each feature map to one value per channel: [N, C, H, W] to [N, C]. Default: none. */
  pool?: 'avg' | 'max';
  /** Scale each result row to unit L2 norm (after pooling), for cosine similarity. Default: none. */
  normalize?: 'l2';
  /**
   * Freeze the cut with LibTorch's inference optimisations (`torch.jit.freeze` with conv-bn
   * folding, then `optimize_for_inference`: oneDNN layouts and prepacked weights on the CPU).
   * On the CPU in float32, where the build has it ({@link RuntimeInfo.onednnFusion}), each
   * convolution then runs as one oneDNN primitive with its activation and residual addition fused
   * ({@link Extractor.onednn} says what was done). On LibTorch 2.x in float32
   * ({@link RuntimeInfo.winograd}), the cut runs channels-last with each convolution on LibTorch's
   * fused operator, and 3x3 stride-1 ones on the addon's own Winograd convolution. In bfloat16 on
   * LibTorch 2.x ({@link RuntimeInfo.pointwiseFusion}), batch norms are folded in float32 before
   * the cast and each convolution runs as LibTorch's fused operator with its weight packed. Faster;
   * numbers move by float rounding (about 1e-5 relative in float32). Always cuts the graph.
   * Default false.
   *
   * Checked, never silently wrong: the first batch of each new input shape also runs through the
   * cut frozen without optimisations, and the two must agree (1e-3 of the largest |value| in
   * float32, 2e-2 in float16, 5e-2 in bfloat16); where they do not, as on MobileNetV3 with
   * LibTorch 1.13, the extractor drops to conv-bn folding alone, then to no optimisation, returns
   * the answer that agreed, and emits a process warning ({@link Extractor.optimization} says
   * why). That first batch takes about twice as long; the plain cut's weights stay in memory.
   */
  optimize?: boolean;
  /**
   * With `optimize` on the CPU in float32: let 3x3 stride-1 convolutions use the Winograd
   * algorithm F(4x4, 3x3) (oneDNN's on LibTorch 1.13, the addon's own on 2.x; about 2x faster for
   * those layers; holds their weights transformed, about 4x their size, and on 2.x their packed
   * weights as well). `false` keeps the direct algorithm (on 2.x: LibTorch's own
   * `optimize_for_inference` graph). Default true.
   */
  winograd?: boolean;
  /**
   * On CUDA in float32: let cuDNN's convolutions use TF32 on the tensor cores (inputs rounded to a
   * 10-bit mantissa, sums in float32; about 1e-3 relative error, several times faster on Ampere
   * and later). Off, float32 means float32 and CUDA matches the CPU within 1e-3 of the largest
   * value. PyTorch's own default is on. The switch is process-wide in LibTorch: extractors with
   * different choices take turns. No effect on the CPU or in float16/bfloat16. Default false.
   */
  tf32?: boolean;
  /**
   * LibTorch's intra-op thread count, set before each of this extractor's runs. Process-wide:
   * LibTorch has one count for all its threads, so extractors with different values take turns
   * setting it. Default: `OMP_NUM_THREADS` if set, else the CPUs this process may run on.
   */
  threads?: number;
  /**
   * Run a model whose code reads or writes files (`aten::from_file`, `aten::save`). Such models
   * are refused with `UNSAFE_MODEL` by default: a TorchScript file is a program, and one from
   * someone else may be an attack. Default false.
   */
  allowUnsafeOperations?: boolean;
  /**
   * The most rows one forward takes when calls queue up: calls waiting right behind each other
   * whose inputs have the same shape run as one forward (up to this many rows together), and each
   * gets its own rows back. A lone call runs at once, never waiting for company. Default 8 on the
   * CPU, 32 on CUDA; 1 runs every call on its own.
   */
  maxBatch?: number;
  /**
   * The most calls that may wait (not counting the one running); one more is rejected at once
   * with `QUEUE_FULL`, for servers that would rather refuse work than pile it up. Default: no limit.
   */
  maxQueue?: number;
  /**
   * A time limit for each call, in milliseconds, from the moment it is made: a call still waiting
   * then is removed from the queue, a call running is left to finish in the background (LibTorch
   * cannot stop a forward) and its result dropped; either way it rejects with `TIMEOUT`. A call's
   * own `timeoutMs` overrides it. Default: none.
   */
  timeoutMs?: number;
  /**
   * `Extractor.create` only: load and run the model once in a child process first (see
   * `Extractor.verify`), so that a crashing or memory-hungry model costs a child, not the app:
   * `true`, or the limits `{ timeoutMs, maxMemoryMiB, inputShape }`. Default false.
   */
  isolate?: boolean | { timeoutMs?: number; maxMemoryMiB?: number; inputShape?: readonly number[] };
  /** How images are preprocessed; `false`: only scaled to [0, 1]. Default: ImageNet's evaluation transform. */
  preprocess?: PreprocessOptions | false;
}

/** What a layer is: a module call, or, among nested layers, another node torchvision lists. */
export type LayerKind = 'module' | 'function' | 'parameter' | 'input';

/**
 * A layer of the model: a top-level child, or with `{ nested: true }`, any node that can be cut
 * at: module calls, and the functions, operators, parameters and input that torchvision's
 * `get_graph_node_names` lists.
 */
export interface LayerInfo {
  /** Its position in the list, from 0. */
  index: number;
  /**
   * Its name: `'layer4'`, `'layer1.0.relu_1'` (the second call of `layer1.0.relu`),
   * `'layer1.0.add'` (the residual addition in `layer1.0`'s forward), `'flatten'`.
   */
  name: string;
  /**
   * A module's class name (`'Sequential'`, `'Conv2d'`); a function's or operator's name as
   * torch.fx gives it (`'add'`, `'flatten'`, `'getitem'`); `'Parameter'`; for the input, its name.
   */
  type: string;
  /**
   * `'module'`: a call of a module's forward. `'function'`: a function, method or operator in a
   * forward (`torch.flatten`, `x.mean`, `out += identity`, `F.relu`, `x[:, 0]`). `'parameter'`:
   * a parameter a forward reads itself (ConvNeXt's `layer_scale`). `'input'`: the model's input.
   */
  kind: LayerKind;
}

/** A float32 tensor given as row-major values and a shape `[N, C, H, W]`. */
export interface TensorInput {
  data: Float32Array;
  shape: readonly number[];
}

/** An image as `sharp(...).raw()` or a canvas `ImageData` gives it: 8-bit pixels, rows top to bottom, RGB or RGBA. */
export interface ImageInput {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  /** 3 (RGB) or 4 (RGBA; alpha is ignored). */
  channels: 3 | 4;
}

/** What `extract()` takes: a float32 batch (tensor or ndarray), or one or more images. */
export type ExtractInput = TensorInput | NdArray<Float32Array> | ImageInput | readonly ImageInput[];

/** What the addon was built against and sees now. */
export interface RuntimeInfo {
  /** LibTorch's version: `'1.13.0'`. */
  torchVersion: string;
  /** Whether LibTorch sees a CUDA device. */
  cudaAvailable: boolean;
  /** How many CUDA devices it sees. */
  cudaDeviceCount: number;
  /**
   * Whether `optimize` fuses convolutions with oneDNN here (see {@link OneDnnReport}): the build has
   * it (where LibTorch uses a shared system oneDNN, as Debian's does), the CPU has AVX2 or
   * AVX-512, and `LTF_ONEDNN_FUSION=0` is not set.
   */
  onednnFusion: boolean;
  /**
   * Whether `optimize` with `dtype: 'bfloat16'` on the CPU runs each convolution as LibTorch's own
   * fused oneDNN operator, its weight packed ahead of time and its activation and residual
   * addition fused (see {@link OneDnnReport}): LibTorch 2.x registers that operator
   * (`mkldnn::_convolution_pointwise`; 1.13 does not), and `LTF_ONEDNN_FUSION=0` is not set.
   */
  pointwiseFusion: boolean;
  /**
   * Whether `optimize` in float32 on the CPU (with `winograd`, the default) runs the cut
   * channels-last on LibTorch's fused oneDNN operator, with 3x3 stride-1 convolutions on the
   * addon's own Winograd F(4x4, 3x3) convolution (see {@link OneDnnReport}): LibTorch 2.x registers
   * the oneDNN operators it uses (`mkldnn::_linear_pointwise` and `_convolution_pointwise`; 1.13
   * does not), and `LTF_ONEDNN_FUSION=0` is not set.
   */
  winograd: boolean;
  /** Whether oneDNN can run on this CPU (README, "CPUs that hide their caches"). */
  onednnCaches: OneDnnCaches;
}

/**
 * The per-core cache sizes oneDNN blocks its kernels with. Some VMs hide them from CPUID, and
 * oneDNN 3 (LibTorch 2.x) then divides by zero or computes wrong convolutions: there the addon
 * switches oneDNN off for the process (`usable: false`) and warns once (`LTF_ONEDNN_CACHES`).
 */
export interface OneDnnCaches {
  /** Bytes per core, L1 first: as oneDNN takes them, or as CPUID reports them; `[]` if it reports none. */
  sizes: number[];
  /** `'onednn'`: asked of oneDNN (a shared libdnnl); `'cpuid'`: read from CPUID (oneDNN inside libtorch_cpu). */
  source: 'onednn' | 'cpuid';
  /** False: oneDNN is off for this process (correct, slower convolutions; `optimize` at `'folded'` at most). */
  usable: boolean;
  /** Why not usable; `''` if usable. */
  reason: string;
}

/** Options of one {@link Extractor.extract} call. */
export interface ExtractOptions {
  /**
   * Aborts the call: waiting, it is removed from the queue; running, it is left to finish in the
   * background (LibTorch cannot stop a forward; the calls behind it wait for it) and its result is
   * dropped. Either way the call rejects at once with `ABORTED`.
   */
  signal?: AbortSignal;
  /** A time limit for this call in milliseconds, as the extractor's `timeoutMs` (which it overrides). */
  timeoutMs?: number;
}

/** What `optimize` does now ({@link Extractor.optimization}). */
export interface OptimizationReport {
  /**
   * `'off'`: `optimize` was not asked for. `'full'`: every optimisation. `'folded'`: conv-bn
   * folding alone (`optimize_for_inference` disagreed with the plain cut). `'plain'`: none (folding
   * disagreed too).
   */
  level: 'off' | 'full' | 'folded' | 'plain';
  /** Input shapes [N, C, H, W] checked against the plain cut at this level, in order. */
  checkedShapes: readonly (readonly number[])[];
  /** Why a level was dropped: the input, the output and the difference; null if none was. */
  fallback: string | null;
  /** The oneDNN rewrite, while the level is `'full'` (all zero otherwise). */
  onednn: OneDnnReport;
}

/**
 * What `optimize: true` did to the convolutions of a CPU cut, beyond LibTorch's own passes: each
 * convolution it took runs as one oneDNN primitive with its activation and residual addition
 * fused. In float32 on LibTorch 1.13, the addon's own oneDNN operator
 * ({@link RuntimeInfo.onednnFusion}), 3x3 stride-1 convolutions with oneDNN's Winograd algorithm;
 * in float32 on LibTorch 2.x, LibTorch's fused operator and, for 3x3 stride-1 convolutions, the
 * addon's own Winograd convolution ({@link RuntimeInfo.winograd}); in bfloat16, LibTorch 2.x's
 * fused operator ({@link RuntimeInfo.pointwiseFusion}). On LibTorch 2.x counted once the first
 * batch has run (the weights are packed for its shapes). All zero elsewhere (GPU, float16, no
 * `optimize`, or where none of them is there).
 */
export interface OneDnnReport {
  /** Convolutions run by the fused oneDNN operator. */
  convolutions: number;
  /**
   * Of which may use the Winograd algorithm (3x3, stride 1). Each input shape decides: direct
   * where oneDNN has no Winograd kernel (1.13), or where the transformed weights would cost more
   * to stream than the multiplications they save (small maps: on 2.x, fewer than 32 tiles of 4x4
   * outputs in the batch).
   */
  winograd: number;
  /** Activations folded into a convolution (ReLU, ReLU6, SiLU; in bfloat16 also hardswish and sigmoid). */
  fusedActivations: number;
  /** Residual additions (`conv(x) + identity`) folded into a convolution. */
  fusedResiduals: number;
}

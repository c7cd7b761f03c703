/** The Extractor: a TorchScript model cut at one or more layers, ready to run. */
import * as fs from 'node:fs';

import { getBinding, type NativeExtractor, type NativeTensor } from './binding';
import { ExtractorError, awaitNative, callNative, callSite } from './errors';
import { FeatureTensor } from './feature-tensor';
import { normalizeAnyInput } from './input';
import { LIMITS } from './limits';
import {
  isolateOption,
  normalizeCallOptions,
  normalizeLayers,
  normalizeModel,
  normalizeOptions,
  ownProperties,
  timeoutOption,
  type LayerRequest,
} from './options';
import { type VerifyOptions, type VerifyReport, verifyModel } from './isolate';
import { ModelSummary } from './summary';
import type {
  ExtractInput,
  ExtractOptions,
  ExtractorOptions,
  Features,
  LayerInfo,
  LayerKind,
  LayerSpec,
  ModelSource,
  OneDnnReport,
  OptimizationReport,
  RuntimeInfo,
} from './types';

// Symbol.dispose exists from Node 20 on (as Symbol(nodejs.dispose) before the language had it).
const disposeSymbol: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');

// What Extractor.create() loaded, handed to the one constructor call it makes: set just before
// that call and cleared in its `finally`, so that nothing is ever left for a later constructor
// (the constructor takes it first thing, before any code of the caller's can run).
interface Adoption {
  native: NativeExtractor;
  source: string | Uint8Array;
  request: LayerRequest;
  settings: ReturnType<typeof normalizeOptions>;
  timeoutMs: number | undefined;
  layer: LayerSpec;
}

// Ids of queued calls, for cancel(): unique in this JavaScript thread.
let nextCallId = 1;
let adopting: Adoption | undefined;

/** A model file's bytes, or the error the native loader would give for it. */
function readModelFile(file: string): Uint8Array {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ExtractorError('MODEL_NOT_FOUND', `model file not found: ${file}`);
    if (code === 'EISDIR') throw new ExtractorError('MODEL_LOAD_FAILED', `model path is a directory, not a TorchScript file: ${file}`);
    throw new ExtractorError('MODEL_LOAD_FAILED', `could not read the model file ${file}: ${(error as Error).message}`);
  }
}

function withIndex(layers: { name: string; type: string; kind?: LayerKind }[]): LayerInfo[] {
  return layers.map((layer, index) => Object.freeze({ index, name: layer.name, type: layer.type, kind: layer.kind ?? 'module' }));
}

function freezeSpec<L extends LayerSpec>(layer: L): L {
  if (typeof layer === 'string') return layer;
  return Object.freeze(Array.isArray(layer) ? [...layer] : { ...(layer as object) }) as L;
}

/**
 * Features of intermediate layers of a TorchScript CNN.
 *
 * ```ts
 * const ex = new Extractor('resnet18.pt', 'layer4');
 * const out = await ex.extract({ data, shape: [1, 3, 224, 224] });   // out.shape: [1, 512, 7, 7]
 * ex.dispose();
 * ```
 *
 * A single top-level layer that the model's forward reaches through a plain chain of children is
 * cut the article's way: those children in a `torch::nn::Sequential`. Any other cut (nested
 * names, several layers, a forward that does more than chain children) cuts the TorchScript graph
 * itself, so the features are what each module outputs inside the model's own forward. Either
 * way, what is cut away is released.
 */
export class Extractor<L extends LayerSpec = string> {
  /** Every top-level child of the model, in order: the ones cut away too. */
  readonly layers: readonly LayerInfo[];
  /** The layers asked for, as given. */
  readonly layer: L;
  /** The names the results come under: the layers' names, or their new names from a record. */
  readonly outputNames: readonly string[];
  /** The top-level children still used, input first. */
  readonly keptLayers: readonly string[];
  /** Where it runs: `'cpu'` or `'cuda:N'`. */
  readonly device: string;
  /** Parameters kept, each counted once: 11,176,512 for ResNet-18 at layer4, 683,072 at layer2. */
  readonly parameterCount: number;
  /** How the model was cut: `'sequential'` (a chain of top-level children) or `'graph'`. */
  readonly strategy: 'sequential' | 'graph';
  #optimization: Readonly<OptimizationReport>;

  #native: NativeExtractor | undefined;
  readonly #source: string | Uint8Array;
  readonly #request: LayerRequest;
  readonly #allowUnsafe: boolean;
  readonly #timeoutMs: number | undefined;

  /**
   * Loads `model` and cuts it at `layer`, on the calling thread (a ResNet-18 takes tens of
   * milliseconds; use {@link Extractor.create} to keep an Electron or server event loop free).
   * @param model a path to a TorchScript file (`torch.jit.script(model).save(path)`), or its bytes
   * @param layer `'layer4'`, `'layer3.1.conv2'`, `['layer2', 'layer4']` or `{ layer2: 'mid', layer4: 'deep' }`
   * @throws {ExtractorError} MODEL_NOT_FOUND, MODEL_LOAD_FAILED, LAYER_NOT_FOUND (the message lists
   *   the layers), UNSUPPORTED_CUT, DEVICE_UNAVAILABLE, INVALID_ARGUMENT
   */
  constructor(model: ModelSource, layer: L, options?: ExtractorOptions) {
    const adoption = adopting;
    adopting = undefined;
    let native: NativeExtractor;
    if (adoption) {
      // Built by create() from what it checked before loading: the caller's objects are not read
      // again (they may have changed while the model loaded).
      ({ native, source: this.#source, request: this.#request } = adoption);
      this.#allowUnsafe = adoption.settings.allowUnsafeOperations;
      this.#timeoutMs = adoption.timeoutMs;
      this.layer = adoption.layer as L;
    } else {
      this.#source = normalizeModel(model);
      this.#request = normalizeLayers(layer);
      const settings = normalizeOptions(options);
      if (isolateOption(options)) {
        throw new ExtractorError('INVALID_ARGUMENT', 'isolate needs Extractor.create(), which can wait for the child process');
      }
      this.#allowUnsafe = settings.allowUnsafeOperations;
      this.#timeoutMs = timeoutOption(options);
      this.layer = freezeSpec(layer);
      native = callNative(() => getBinding().load(this.#source, this.#request.names, settings));
    }
    const info = native.describe();
    this.#native = native;
    this.layers = Object.freeze(withIndex(info.layers));
    this.outputNames = Object.freeze([...this.#request.keys]);
    this.keptLayers = Object.freeze([...info.kept]);
    this.device = info.device;
    this.parameterCount = info.parameterCount;
    this.strategy = info.strategy;
    this.#optimization = freezeReport(info.optimization);
  }

  /**
   * What `optimize` does now: its level, the input shapes checked against the plain cut, and why
   * a level was dropped (see the `optimize` option). Changes only on a new input shape.
   */
  get optimization(): Readonly<OptimizationReport> {
    return this.#optimization;
  }

  /** What the oneDNN rewrite of `optimize: true` does on the CPU (all zero where it does not run). */
  get onednn(): Readonly<OneDnnReport> {
    return this.#optimization.onednn;
  }

  /**
   * Like the constructor, but loads on a libuv worker thread: the event loop keeps turning.
   * Rejects with the constructor's errors.
   */
  static async create<L extends LayerSpec>(model: ModelSource, layer: L, options?: ExtractorOptions): Promise<Extractor<L>> {
    const site = callSite();
    let source = normalizeModel(model);
    const request = normalizeLayers(layer);
    const settings = normalizeOptions(options);
    const timeoutMs = timeoutOption(options);
    const frozen = freezeSpec(layer);
    const isolate = isolateOption(options);
    if (isolate) {
      const limits = typeof isolate === 'object' ? ownProperties(isolate) : {};
      // Read once: the bytes the child tried are the bytes loaded here, whatever happens to the
      // file, or to the caller's buffer (a copy is taken), in between.
      source = typeof source === 'string' ? readModelFile(source) : new Uint8Array(source);
      await verifyModel(source, {
        ...limits,
        layer: frozen,
        allowUnsafeOperations: settings.allowUnsafeOperations,
        options: { ...settings },
      });
    }
    const native = await awaitNative(site, getBinding().loadAsync(source, request.names, settings));
    adopting = { native, source, request, settings, timeoutMs, layer: frozen };
    try {
      return new Extractor(model, frozen, options);
    } finally {
      adopting = undefined;
    }
  }

  /**
   * Loads `model` in a child process, cuts it (at `options.layer`, default the last top-level
   * child) and runs one forward on zeros, within time and memory limits: a model that crashes
   * LibTorch's loader or allocates without bound kills the child, not the app.
   * Rejects with MODEL_REJECTED (crash, timeout, memory) or the error loading it in-process
   * would give (MODEL_LOAD_FAILED, UNSAFE_MODEL, LAYER_NOT_FOUND, ...).
   */
  static verify(model: ModelSource, options?: VerifyOptions): Promise<VerifyReport> {
    return verifyModel(normalizeModel(model), options);
  }

  /**
   * The model's layers without building an extractor: its top-level children, or with
   * `{ nested: true }` every node that can be cut at, in the order the forward runs them: module
   * calls, and the functions, operators, parameters and input that torchvision's
   * `get_graph_node_names` lists, under its names (`'layer1.0.relu'`, `'layer1.0.add'`, then
   * `'layer1.0.relu_1'`; `'flatten'`), each with its `kind`. A model
   * whose code reads or writes files is refused, as by the constructor, unless
   * `allowUnsafeOperations: true`.
   * @throws {ExtractorError} MODEL_NOT_FOUND, MODEL_LOAD_FAILED, UNSAFE_MODEL, INVALID_ARGUMENT
   */
  static listLayers(model: ModelSource, options?: { nested?: boolean; allowUnsafeOperations?: boolean }): LayerInfo[] {
    const source = normalizeModel(model);
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new ExtractorError(
        'INVALID_ARGUMENT',
        'Expected { nested?: boolean, allowUnsafeOperations?: boolean } for the options of listLayers',
      );
    }
    const given = options === undefined ? {} : ownProperties(options);
    const flag = (name: string): boolean => {
      const value = given[name] ?? false;
      if (typeof value !== 'boolean') throw new ExtractorError('INVALID_ARGUMENT', `Expected true or false for ${name}`);
      return value;
    };
    const nested = flag('nested');
    const allowUnsafe = flag('allowUnsafeOperations');
    return withIndex(callNative(() => getBinding().listLayers(source, nested, allowUnsafe)));
  }

  /** The LibTorch this addon was built against, and whether it sees CUDA. */
  static runtime(): RuntimeInfo {
    return callNative(() => getBinding().runtime());
  }

  /** Whether {@link Extractor.dispose} has been called. */
  get disposed(): boolean {
    return this.#native === undefined;
  }

  /**
   * Runs the cut model. The input is copied before this returns, so the caller may reuse its
   * buffers at once. The call joins this extractor's queue and runs on the extractor's own
   * thread, in the order calls were made; no libuv thread waits for it (fs, dns, sharp keep
   * theirs). Calls queued right behind each other with inputs of the same shape run as one
   * forward (`maxBatch`) and each gets its own rows.
   * @param input `{ data: Float32Array, shape: [N, C, H, W] }`, a float32 ndarray, or images
   *   (`{ data: Uint8Array, width, height, channels }`, one or an array), which are resized,
   *   cropped and normalised on the extractor's device first (see the `preprocess` option)
   * @param options `signal` (an AbortSignal) and `timeoutMs` for this call
   * @returns the layer's features, or a record of them for several layers, in JavaScript memory
   * Rejects with INVALID_INPUT, FORWARD_FAILED (LibTorch's message: a wrong channel count, an
   * input too small for the network), OUT_OF_MEMORY, DISPOSED, QUEUE_FULL (`maxQueue` calls
   * already waiting), ABORTED or TIMEOUT.
   */
  async extract(input: ExtractInput, options?: ExtractOptions): Promise<Features<L>> {
    const site = callSite();
    const call = normalizeCallOptions(options);
    if (call.signal?.aborted) throw aborted(call.signal);
    const batch = normalizeAnyInput(input);
    const native = this.#live();
    const id = nextCallId++;
    const pending = callNative(() =>
      'images' in batch ? native.forwardImages(batch.images, id) : native.forward(batch.data, batch.shape, id),
    );
    const outputs = await awaitNative(site, this.#settled(native, id, pending, call.signal, call.timeoutMs ?? this.#timeoutMs));
    this.#checkOptimization(native);
    return this.#features(outputs);
  }

  /** {@link Extractor.extract} on the calling thread: same result, blocks until done. */
  extractSync(input: ExtractInput): Features<L> {
    const batch = normalizeAnyInput(input);
    const native = this.#live();
    const outputs = callNative(() =>
      'images' in batch ? native.forwardImagesSync(batch.images) : native.forwardSync(batch.data, batch.shape),
    );
    this.#checkOptimization(native);
    return this.#features(outputs);
  }

  /**
   * What this extractor runs, as torchsummary prints it: every module call its outputs depend on,
   * with output shapes and parameters, and the totals. Loads the model again (from its path or
   * bytes) on the CPU and runs it once on zeros of `inputShape`, on the calling thread.
   * @param inputShape one input without the batch dimension: `[3, 224, 224]`
   */
  summary(inputShape: readonly number[]): ModelSummary {
    this.#live();
    if (
      !Array.isArray(inputShape) ||
      inputShape.length === 0 ||
      !inputShape.every((d) => Number.isInteger(d) && d >= 1 && d <= LIMITS.maxShapeSide)
    ) {
      throw new ExtractorError(
        'INVALID_ARGUMENT',
        `Expected positive integers such as [3, 224, 224] for inputShape but received ${String(inputShape)}`,
      );
    }
    const result = callNative(() => getBinding().summarize(this.#source, this.#request.names, [...inputShape], this.#allowUnsafe));
    const outputs: Record<string, number[]> = {};
    this.outputNames.forEach((key, i) => (outputs[key] = result.outputShapes[i].slice(1)));
    const rows = result.rows.map((row) => ({ ...row, outputShape: row.outputShape.slice(1) }));
    return new ModelSummary(rows, [...inputShape], outputs, result.totalParameters);
  }

  /**
   * Releases the model. Extractions already running finish first (they hold the model until
   * then); later calls throw DISPOSED. Safe to call more than once.
   */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  /** Same as {@link Extractor.dispose}, for `using ex = new Extractor(...)`. */
  [disposeSymbol](): void {
    this.dispose();
  }

  #live(): NativeExtractor {
    if (!this.#native) throw new ExtractorError('DISPOSED', 'this extractor has been disposed; create a new one');
    return this.#native;
  }

  // The call's outcome, or ABORTED / TIMEOUT first: a call still waiting is taken out of the
  // queue; one running finishes in the background and its result is dropped.
  #settled<T>(
    native: NativeExtractor,
    id: number,
    pending: Promise<T>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
  ): Promise<T> {
    if (!signal && timeoutMs === undefined) return pending;
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const stop = (error: ExtractorError) => {
        finish();
        reject(error);
      };
      const onAbort = () => {
        native.cancel(id);
        stop(aborted(signal!));
      };
      const finish = () => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const started = !native.cancel(id);
          stop(
            new ExtractorError(
              'TIMEOUT',
              `the call took longer than ${timeoutMs} ms ${started ? '(its forward was running: it finishes in the background)' : 'waiting in the queue'}`,
            ),
          );
        }, timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      pending.then(
        (value) => {
          finish();
          resolve(value);
        },
        (error: unknown) => {
          finish();
          reject(error);
        },
      );
    });
  }

  // After a forward: what optimize's check learned, and a warning when it dropped a level.
  #checkOptimization(native: NativeExtractor): void {
    const before = this.#optimization;
    if (before.level === 'off') return;
    const now = freezeReport(callNative(() => native.optimization()));
    this.#optimization = now;
    if (now.fallback !== before.fallback && now.fallback !== null) {
      process.emitWarning(`libtorch-features: ${now.fallback}; now at level '${now.level}'`, {
        code: 'LTF_OPTIMIZE_FALLBACK',
        detail: 'The answer returned is the one that agreed with the plain cut. Extractor.optimization has the details.',
      });
    }
  }

  #features(outputs: NativeTensor[]): Features<L> {
    if (this.#request.single) return new FeatureTensor(outputs[0].data, outputs[0].shape) as Features<L>;
    const record: Record<string, FeatureTensor> = {};
    // Defined, not assigned: an output named '__proto__' is a key like any other.
    this.#request.keys.forEach((key, i) =>
      Object.defineProperty(record, key, {
        value: new FeatureTensor(outputs[i].data, outputs[i].shape),
        enumerable: true,
        writable: true,
        configurable: true,
      }),
    );
    return record as Features<L>;
  }
}

function aborted(signal: AbortSignal): ExtractorError {
  const reason =
    signal.reason instanceof Error ? `: ${signal.reason.message}` : signal.reason === undefined ? '' : `: ${String(signal.reason)}`;
  return new ExtractorError('ABORTED', `the call was aborted${reason}`);
}

function freezeReport(report: OptimizationReport): Readonly<OptimizationReport> {
  return Object.freeze({
    level: report.level,
    checkedShapes: Object.freeze(report.checkedShapes.map((shape) => Object.freeze([...shape]))),
    fallback: report.fallback,
    onednn: Object.freeze({ ...report.onednn }),
  });
}

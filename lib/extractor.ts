/** The Extractor: a TorchScript model cut after a named layer, ready to run. */
import { getBinding, type NativeExtractor } from './binding';
import { ExtractorError, awaitNative, callNative, callSite } from './errors';
import { FeatureTensor } from './feature-tensor';
import { normalizeInput } from './input';
import { loadRequest, normalizeModel } from './options';
import type { ExtractInput, ExtractorOptions, LayerInfo, RuntimeInfo } from './types';

// Symbol.dispose exists from Node 20 on (as Symbol(nodejs.dispose) before the language had it).
const disposeSymbol: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');

// Hands a model loaded by Extractor.create() to the constructor, which runs synchronously.
let adopted: NativeExtractor | undefined;

function withIndex(layers: { name: string; type: string }[]): LayerInfo[] {
  return layers.map((layer, index) => Object.freeze({ index, name: layer.name, type: layer.type }));
}

/**
 * Features of an intermediate layer of a TorchScript CNN.
 *
 * ```ts
 * const ex = new Extractor('resnet18.pt', 'layer4');
 * const out = await ex.extract({ data, shape: [1, 3, 224, 224] });   // out.shape: [1, 512, 7, 7]
 * ex.dispose();
 * ```
 *
 * The model is loaded on the CPU; the children that lead to `layer` are kept, in a
 * `torch::nn::Sequential`, in eval mode, on the chosen device; the rest is released.
 */
export class Extractor {
  /** Every top-level child of the model, in order: the ones cut away too. */
  readonly layers: readonly LayerInfo[];
  /** The layer whose output this extractor returns. */
  readonly layer: string;
  /** The children kept, input first; the last is {@link Extractor.layer}. */
  readonly keptLayers: readonly string[];
  /** Where it runs: `'cpu'` or `'cuda:N'`. */
  readonly device: string;
  /** Parameters held by the kept children: 11,176,512 for ResNet-18 cut at layer4. */
  readonly parameterCount: number;

  #native: NativeExtractor | undefined;

  /**
   * Loads `model` and cuts it after `layer`, on the calling thread (a ResNet-18 takes a fraction
   * of a second; use {@link Extractor.create} to keep an Electron or server event loop free).
   * @param model path to a TorchScript file (`torch.jit.script(model).save(path)`)
   * @param layer the name of a top-level child, as `named_children()` lists it: `'layer4'`
   * @throws {ExtractorError} MODEL_NOT_FOUND, MODEL_LOAD_FAILED, LAYER_NOT_FOUND (the message lists
   *   the layers), UNSUPPORTED_CUT, DEVICE_UNAVAILABLE, INVALID_ARGUMENT
   */
  constructor(model: string, layer: string, options?: ExtractorOptions) {
    let native = adopted;
    adopted = undefined;
    if (!native) {
      const request = loadRequest(model, layer, options);
      native = callNative(() => getBinding().load(request.path, request.layer, request.device));
    }
    const info = native.describe();
    this.#native = native;
    this.layers = Object.freeze(withIndex(info.layers));
    this.layer = info.layer;
    this.keptLayers = Object.freeze([...info.kept]);
    this.device = info.device;
    this.parameterCount = info.parameterCount;
  }

  /**
   * Like the constructor, but loads on a libuv worker thread: the event loop keeps turning.
   * Rejects with the constructor's errors.
   */
  static async create(model: string, layer: string, options?: ExtractorOptions): Promise<Extractor> {
    const site = callSite();
    const request = loadRequest(model, layer, options);
    const native = await awaitNative(site, getBinding().loadAsync(request.path, request.layer, request.device));
    adopted = native;
    return new Extractor(model, layer, options);
  }

  /**
   * The model's top-level children, without building an extractor.
   * @throws {ExtractorError} MODEL_NOT_FOUND, MODEL_LOAD_FAILED, INVALID_ARGUMENT
   */
  static listLayers(model: string): LayerInfo[] {
    const file = normalizeModel(model);
    return withIndex(callNative(() => getBinding().listLayers(file)));
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
   * Runs the cut model on a libuv worker thread. The input is copied before this returns, so the
   * caller may reuse its buffer at once. Calls may overlap; each runs on its own worker.
   * @param input `{ data: Float32Array, shape: [N, C, H, W] }` or a float32 ndarray
   * @returns the layer's output, in JavaScript memory
   * Rejects with INVALID_INPUT, FORWARD_FAILED (LibTorch's message: a wrong channel count, an
   * input too small for the network), OUT_OF_MEMORY or DISPOSED.
   */
  async extract(input: ExtractInput): Promise<FeatureTensor> {
    const site = callSite();
    const { data, shape } = normalizeInput(input);
    const native = this.#live();
    const output = await awaitNative(site, callNative(() => native.forward(data, shape)));
    return new FeatureTensor(output.data, output.shape);
  }

  /** {@link Extractor.extract} on the calling thread: same result, blocks until done. */
  extractSync(input: ExtractInput): FeatureTensor {
    const { data, shape } = normalizeInput(input);
    const native = this.#live();
    const output = callNative(() => native.forwardSync(data, shape));
    return new FeatureTensor(output.data, output.shape);
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
}

/**
 * Defaults and validation of the arguments of Extractor. Validation happens here, once; the
 * native side receives a complete, normalised request and only asserts.
 */
import * as path from 'node:path';

import type { NativeOptions } from './binding';
import { ExtractorError } from './errors';
import { LIMITS } from './limits';
import type { LayerSpec } from './types';

/** ImageNet's per-channel mean (RGB), as torchvision's pretrained models expect: the default `preprocess.mean`. */
export const IMAGENET_MEAN = Object.freeze([0.485, 0.456, 0.406] as const);
/** ImageNet's per-channel standard deviation (RGB): the default `preprocess.std`. */
export const IMAGENET_STD = Object.freeze([0.229, 0.224, 0.225] as const);

/** Every option's default, keyed as the native options' fields. */
export const DEFAULTS: Readonly<NativeOptions> = Object.freeze({
  device: 'auto',
  dtype: 'float32',
  channelsLast: false,
  pool: '',
  normalize: '',
  optimize: false,
  winograd: true,
  tf32: false,
  threads: 0,
  allowUnsafeOperations: false,
  maxBatch: 0,
  maxQueue: 0,
  preprocess: Object.freeze({ resize: 256, crop: 224, mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] }),
});

const OPTION_NAMES = [
  'device',
  'dtype',
  'channelsLast',
  'pool',
  'normalize',
  'optimize',
  'winograd',
  'tf32',
  'threads',
  'allowUnsafeOperations',
  'maxBatch',
  'maxQueue',
  'timeoutMs',
  'preprocess',
  'isolate',
];
const PREPROCESS_NAMES = ['resize', 'crop', 'mean', 'std'];
const DEVICE = /^(auto|cpu|cuda|cuda:(0|[1-9]\d{0,3}))$/;
// Far beyond any image a CNN is run on; keeps sizes well inside int64 arithmetic natively.
const MAX_SIDE = LIMITS.maxImageSide;

/** Describes a received value for an error message: `-1 of type number`. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'string') return `'${value.length > 60 ? value.slice(0, 57) + '...' : value}' of type string`;
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'Object'})`;
  return `${String(value)} of type ${typeof value}`;
}

function invalid(message: string): ExtractorError {
  return new ExtractorError('INVALID_ARGUMENT', message);
}

/**
 * The own enumerable properties of an options object, in an object with no prototype: options
 * are read from these alone, so that a property planted on `Object.prototype`
 * (`allowUnsafeOperations`, say) is never taken for one the caller gave.
 */
export function ownProperties(value: object): Record<string, unknown> {
  return Object.assign(Object.create(null) as Record<string, unknown>, value);
}

/** The `isolate` option as the caller gave it (own property only), or undefined. */
export function isolateOption(options: unknown): unknown {
  return options !== null && typeof options === 'object' ? ownProperties(options).isolate : undefined;
}

/** The longest layer name taken: far beyond any module path, short enough to search safely. */
export const MAX_LAYER_NAME = LIMITS.maxLayerName;

/** The layer names native code takes, and the keys the results get. */
export interface LayerRequest {
  names: string[];
  keys: string[];
  single: boolean;
}

/** Checks a model argument: a path to a TorchScript file, or its bytes. */
export function normalizeModel(model: unknown): string | Uint8Array {
  if (typeof model === 'string' && model.includes('\0')) {
    // Native code would read the path up to the NUL: a different file than the one named.
    throw invalid(`Expected a path without NUL characters for model but received ${describe(model)}`);
  }
  if (typeof model === 'string' && model.length > 0) return path.resolve(model);
  if (model instanceof Uint8Array) {
    if (model.byteLength === 0) throw invalid('Expected the bytes of a TorchScript file for model but received 0 bytes');
    return model;
  }
  if (model instanceof ArrayBuffer) return normalizeModel(new Uint8Array(model));
  throw invalid(`Expected a path or the bytes (Uint8Array) of a TorchScript file for model but received ${describe(model)}`);
}

function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw invalid(`Expected a layer name such as 'layer4' or 'layer3.1.conv2' for ${what} but received ${describe(name)}`);
  }
  if (name.length > MAX_LAYER_NAME) {
    throw invalid(`Expected a layer name of at most ${MAX_LAYER_NAME} characters for ${what} but received one of ${name.length}`);
  }
  return name;
}

function unique(names: string[], what: string): string[] {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) throw invalid(`${what} names '${name}' twice`);
    seen.add(name);
  }
  return names;
}

/** Checks a layer argument: a name, a list of names, or a record of name to new name. */
export function normalizeLayers(layers: LayerSpec | unknown): LayerRequest {
  if (typeof layers === 'string') {
    const name = checkName(layers, 'layer');
    return { names: [name], keys: [name], single: true };
  }
  if (Array.isArray(layers)) {
    if (layers.length === 0) throw invalid('Expected at least one layer name but received an empty array');
    const names = unique(
      layers.map((name, i) => checkName(name, `layer[${i}]`)),
      'the layer list',
    );
    return { names, keys: names, single: false };
  }
  if (layers !== null && typeof layers === 'object' && !ArrayBuffer.isView(layers)) {
    const entries = Object.entries(layers as Record<string, unknown>);
    if (entries.length === 0) throw invalid('Expected at least one layer in the layer record but received {}');
    const names = entries.map(([name]) => checkName(name, 'a key of the layer record'));
    const keys = unique(
      entries.map(([name, key]) => {
        if (typeof key !== 'string' || key.length === 0) {
          throw invalid(`Expected a non-empty output name for layer '${name}' but received ${describe(key)}`);
        }
        return key;
      }),
      'the layer record',
    );
    return { names, keys, single: false };
  }
  return { names: [checkName(layers, 'layer')], keys: [], single: true };
}

function checkThreads(value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 1024) {
    throw invalid(`Expected an integer from 1 to 1024 for threads but received ${describe(value)}`);
  }
  return value as number;
}

function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalid(`Expected true or false for ${name} but received ${describe(value)}`);
  return value;
}

function checkOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw invalid(`Expected ${allowed.map((a) => `'${a}'`).join(' or ')} for ${name} but received ${describe(value)}`);
  }
  return value as T;
}

function checkSide(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === false) return 0;
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > MAX_SIDE) {
    throw invalid(`Expected an integer from 1 to ${MAX_SIDE}, or false, for ${name} but received ${describe(value)}`);
  }
  return value as number;
}

function checkTriple(value: unknown, name: string, positive: boolean): number[] {
  if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => Number.isFinite(v) && (!positive || v > 0))) {
    throw invalid(`Expected three ${positive ? 'positive ' : ''}numbers (R, G, B) for ${name} but received ${describe(value)}`);
  }
  return [...value];
}

function normalizePreprocess(value: unknown): NativeOptions['preprocess'] {
  const defaults = DEFAULTS.preprocess!;
  if (value === undefined) return { ...defaults, mean: [...defaults.mean!], std: [...defaults.std!] };
  if (value === false) return null;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`Expected an object or false for preprocess but received ${describe(value)}`);
  }
  const given = ownProperties(value);
  for (const key of Object.keys(given)) {
    if (!PREPROCESS_NAMES.includes(key)) {
      throw invalid(`Unknown option 'preprocess.${key}'; the options are: ${PREPROCESS_NAMES.join(', ')}`);
    }
  }
  const normalizeOff = given.mean === false;
  if (normalizeOff && given.std !== undefined) throw invalid('preprocess.std has no effect with preprocess.mean: false');
  return {
    resize: checkSide(given.resize, 'preprocess.resize', defaults.resize),
    crop: checkSide(given.crop, 'preprocess.crop', defaults.crop),
    mean: normalizeOff ? null : given.mean === undefined ? [...defaults.mean!] : checkTriple(given.mean, 'preprocess.mean', false),
    std: normalizeOff ? null : given.std === undefined ? [...defaults.std!] : checkTriple(given.std, 'preprocess.std', true),
  };
}

/** Applies defaults and checks every option; unknown options are refused, not ignored. */
export function normalizeOptions(options: unknown): NativeOptions {
  // Apply defaults
  if (options === undefined) return normalizeOptions({});
  // Validate arguments
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(`Expected an object for options but received ${describe(options)}`);
  }
  const given = ownProperties(options);
  for (const key of Object.keys(given)) {
    if (!OPTION_NAMES.includes(key)) throw invalid(`Unknown option '${key}'; the options are: ${OPTION_NAMES.join(', ')}`);
  }
  const device = given.device ?? DEFAULTS.device;
  if (typeof device !== 'string' || !DEVICE.test(device)) {
    throw invalid(`Expected 'auto', 'cpu', 'cuda' or 'cuda:N' for device but received ${describe(device)}`);
  }
  return {
    device,
    dtype: given.dtype === undefined ? DEFAULTS.dtype : checkOneOf(given.dtype, 'dtype', ['float32', 'float16', 'bfloat16'] as const),
    channelsLast: given.channelsLast === undefined ? DEFAULTS.channelsLast : checkBoolean(given.channelsLast, 'channelsLast'),
    pool: given.pool === undefined ? DEFAULTS.pool : checkOneOf(given.pool, 'pool', ['avg', 'max'] as const),
    normalize: given.normalize === undefined ? DEFAULTS.normalize : checkOneOf(given.normalize, 'normalize', ['l2'] as const),
    optimize: given.optimize === undefined ? DEFAULTS.optimize : checkBoolean(given.optimize, 'optimize'),
    winograd: given.winograd === undefined ? DEFAULTS.winograd : checkBoolean(given.winograd, 'winograd'),
    tf32: given.tf32 === undefined ? DEFAULTS.tf32 : checkBoolean(given.tf32, 'tf32'),
    threads: given.threads === undefined ? DEFAULTS.threads : checkThreads(given.threads),
    allowUnsafeOperations:
      given.allowUnsafeOperations === undefined
        ? DEFAULTS.allowUnsafeOperations
        : checkBoolean(given.allowUnsafeOperations, 'allowUnsafeOperations'),
    maxBatch: given.maxBatch === undefined ? DEFAULTS.maxBatch : checkCount(given.maxBatch, 'maxBatch', MAX_BATCH),
    maxQueue: given.maxQueue === undefined ? DEFAULTS.maxQueue : checkCount(given.maxQueue, 'maxQueue', MAX_QUEUE),
    preprocess: normalizePreprocess(given.preprocess),
  };
}

/** The extractor's own `timeoutMs` (not a native option), or undefined. */
export function timeoutOption(options: unknown): number | undefined {
  if (options === null || typeof options !== 'object') return undefined;
  const value = ownProperties(options).timeoutMs;
  return value === undefined ? undefined : checkTimeout(value, 'timeoutMs');
}

/** The options of one extract() call: an AbortSignal and a time limit. */
export function normalizeCallOptions(options: unknown): { signal?: AbortSignal; timeoutMs?: number } {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(`Expected an object such as { signal, timeoutMs } for the options of extract but received ${describe(options)}`);
  }
  const given = ownProperties(options);
  for (const key of Object.keys(given)) {
    if (key !== 'signal' && key !== 'timeoutMs') throw invalid(`Unknown option '${key}' of extract; the options are: signal, timeoutMs`);
  }
  const signal = given.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalid(`Expected an AbortSignal for signal but received ${describe(signal)}`);
  }
  return { signal, timeoutMs: given.timeoutMs === undefined ? undefined : checkTimeout(given.timeoutMs, 'timeoutMs') };
}

// A forward batch beyond this is not batching; a queue beyond this is not a bound.
const MAX_BATCH = LIMITS.maxBatch;
const MAX_QUEUE = LIMITS.maxQueue;

function checkCount(value: unknown, name: string, max: number): number {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > max) {
    throw invalid(`Expected an integer from 1 to ${max} for ${name} but received ${describe(value)}`);
  }
  return value as number;
}

function checkTimeout(value: unknown, name: string): number {
  // setTimeout's own limit: a longer delay fires at once.
  if (typeof value !== 'number' || !(value > 0) || value > 2 ** 31 - 1) {
    throw invalid(`Expected a number of milliseconds from 1 to ${2 ** 31 - 1} for ${name} but received ${describe(value)}`);
  }
  return value;
}

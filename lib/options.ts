/**
 * Defaults and validation of the arguments of Extractor. Validation happens here, once; the
 * native side receives a complete, normalised request and only asserts.
 */
import * as path from 'node:path';

import { ExtractorError } from './errors';
import type { ExtractorOptions } from './types';

/** Every option's default, keyed as the native request's fields. */
export const DEFAULTS: Readonly<{ device: string }> = Object.freeze({
  device: 'auto',
});

/** What native load() takes. */
export interface LoadRequest {
  path: string;
  layer: string;
  device: string;
}

const DEVICE = /^(auto|cpu|cuda|cuda:(0|[1-9]\d{0,3}))$/;

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

/** Checks a model argument: a path to a TorchScript file. */
export function normalizeModel(model: unknown): string {
  if (typeof model !== 'string' || model.length === 0) {
    throw invalid(`Expected a path to a TorchScript file for model but received ${describe(model)}`);
  }
  return path.resolve(model);
}

/** Checks a layer argument: the name of a top-level child. */
export function normalizeLayer(layer: unknown): string {
  if (typeof layer !== 'string' || layer.length === 0) {
    throw invalid(`Expected a layer name such as 'layer4' for layer but received ${describe(layer)}`);
  }
  return layer;
}

/** Applies defaults and checks every option; unknown options are refused, not ignored. */
export function normalizeOptions(options: unknown): { device: string } {
  // Apply defaults
  if (options === undefined) return { ...DEFAULTS };
  // Validate arguments
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(`Expected an object for options but received ${describe(options)}`);
  }
  const given = options as ExtractorOptions & Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!(key in DEFAULTS)) {
      throw invalid(`Unknown option '${key}'; the options are: ${Object.keys(DEFAULTS).join(', ')}`);
    }
  }
  const device = given.device ?? DEFAULTS.device;
  if (typeof device !== 'string' || !DEVICE.test(device)) {
    throw invalid(`Expected 'auto', 'cpu', 'cuda' or 'cuda:N' for device but received ${describe(device)}`);
  }
  return { device };
}

/** The whole request for native load(). */
export function loadRequest(model: unknown, layer: unknown, options: unknown): LoadRequest {
  return { path: normalizeModel(model), layer: normalizeLayer(layer), ...normalizeOptions(options) };
}

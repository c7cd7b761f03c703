/**
 * Errors raised by libtorch-features. Every failure, from JavaScript validation or from the native
 * addon, is an {@link ExtractorError} with a stable {@link ExtractorError.code}.
 */

/** Every code an {@link ExtractorError} can carry. Keep in step with native/common/errors.h. */
export const ERROR_CODES = [
  'MODEL_NOT_FOUND',
  'MODEL_LOAD_FAILED',
  'UNSAFE_MODEL',
  'MODEL_REJECTED',
  'QUEUE_FULL',
  'ABORTED',
  'TIMEOUT',
  'LAYER_NOT_FOUND',
  'UNSUPPORTED_CUT',
  'INVALID_ARGUMENT',
  'INVALID_INPUT',
  'DEVICE_UNAVAILABLE',
  'DISPOSED',
  'FORWARD_FAILED',
  'OUT_OF_MEMORY',
  'ADDON_LOAD_FAILED',
  'INTERNAL',
] as const;

/** A stable, machine-readable error code. See the README's table of codes. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The error class of libtorch-features: `code` says what failed, `message` what to do about it. */
export class ExtractorError extends Error {
  /** A stable code: branch on this, not on the message. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExtractorError';
    this.code = code;
  }
}

/**
 * The caller's stack, taken before going native, so that an error from a worker thread points at
 * the user's line rather than at ours.
 */
export function callSite(): Error {
  const site = new Error();
  Error.captureStackTrace(site, callSite);
  return site;
}

function isCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** Turns an error thrown by the addon into an ExtractorError with the caller's stack. */
export function fromNative(error: unknown, site?: Error): ExtractorError {
  if (error instanceof ExtractorError) return error;
  const native = error as { code?: unknown; message?: unknown } | null;
  const code = isCode(native?.code) ? native.code : 'INTERNAL';
  const message = typeof native?.message === 'string' ? native.message : String(error);
  const result = new ExtractorError(code, message);
  if (site?.stack) {
    const frames = site.stack.split('\n').slice(1).join('\n');
    result.stack = `${result.name} [${code}]: ${message}\n${frames}`;
  }
  return result;
}

/** Runs a synchronous native call, converting what it throws. */
export function callNative<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw fromNative(error, callSite());
  }
}

/** Awaits an asynchronous native call, converting its rejection and keeping the caller's stack. */
export async function awaitNative<T>(site: Error, promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw fromNative(error, site);
  }
}

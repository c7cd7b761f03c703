/**
 * Trying a model in a child process before trusting it. A TorchScript file is a program, and
 * fuzzers have crashed LibTorch's loader many times (segfaults in the unpickler, huge allocations
 * from tiny files): in a child, a crash or a memory bomb kills the child, not the app, and comes
 * back as an ExtractorError with code MODEL_REJECTED.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ExtractorError, type ErrorCode } from './errors';
import { LIMITS } from './limits';
import { describe, ownProperties } from './options';
import type { LayerInfo, ModelSource } from './types';

/** Options of {@link verifyModel}. */
export interface VerifyOptions {
  /** The layers to cut at, as the Extractor would (default: the last top-level child). */
  layer?: string | readonly string[] | Readonly<Record<string, string>>;
  /** The input of the trial forward, with its batch dimension. Default [1, 3, 224, 224]. */
  inputShape?: readonly number[];
  /** The child's time limit. Default 60 s. */
  timeoutMs?: number;
  /** The child's resident-memory limit (checked every 20 ms, on Linux). Default 4096 MiB. */
  maxMemoryMiB?: number;
  /** Allow code that reads or writes files (see ExtractorOptions). Default false. */
  allowUnsafeOperations?: boolean;
  /**
   * The options the extractor will be built with (`device`, `dtype`, `channelsLast`, `optimize`,
   * `winograd`, `tf32`, `pool`, `normalize`): the child tries those. Default: the CPU in float32.
   * `Extractor.create({ isolate })` passes its own.
   */
  options?: Readonly<Record<string, unknown>>;
}

/** What the child found. */
export interface VerifyReport {
  /** The model's top-level children. */
  layers: LayerInfo[];
  /** The shape of each output of the trial forward. */
  outputShapes: number[][];
  /** Parameters the cut keeps. */
  parameterCount: number;
  /** How long loading, cutting and the forward took in the child. */
  milliseconds: number;
  /** The child's peak resident memory. */
  peakMemoryMiB: number;
}

const CHILD = path.join(__dirname, 'verify-child.js');
const POLL_MS = 20;

function rssMiB(pid: number): number | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

function check(given: VerifyOptions): Required<Omit<VerifyOptions, 'layer'>> & Pick<VerifyOptions, 'layer'> {
  const bad = (message: string) => new ExtractorError('INVALID_ARGUMENT', message);
  // Own properties only: nothing planted on Object.prototype is taken for a limit or a permission.
  const options = ownProperties(given) as VerifyOptions;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const maxMemoryMiB = options.maxMemoryMiB ?? 4096;
  const inputShape = options.inputShape ?? [1, 3, 224, 224];
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0))
    throw bad(`Expected a positive number for timeoutMs but received ${describe(timeoutMs)}`);
  if (!(Number.isFinite(maxMemoryMiB) && maxMemoryMiB > 0))
    throw bad(`Expected a positive number for maxMemoryMiB but received ${describe(maxMemoryMiB)}`);
  if (
    !Array.isArray(inputShape) ||
    inputShape.length !== 4 ||
    !inputShape.every((d) => Number.isInteger(d) && d > 0 && d <= LIMITS.maxVerifySide)
  ) {
    throw bad(`Expected [N, C, H, W] positive integers for inputShape but received ${describe(inputShape)}`);
  }
  if (options.options !== undefined && (options.options === null || typeof options.options !== 'object')) {
    throw bad(`Expected an object for options but received ${describe(options.options)}`);
  }
  return {
    layer: options.layer,
    inputShape,
    timeoutMs,
    maxMemoryMiB,
    allowUnsafeOperations: options.allowUnsafeOperations ?? false,
    options: options.options ?? {},
  };
}

/**
 * Loads `model` in a child process, cuts it and runs one forward on zeros, within time and memory
 * limits. Resolves with what it found; rejects with the in-process error's code when the model is
 * simply unusable (MODEL_LOAD_FAILED, LAYER_NOT_FOUND, UNSAFE_MODEL, ...), and with MODEL_REJECTED
 * when the child crashed, ran out of time, went over its memory limit or could not be started.
 */
export async function verifyModel(model: ModelSource, options: VerifyOptions = {}): Promise<VerifyReport> {
  const settings = check(options);
  let file: string;
  let temp: string | undefined;
  if (typeof model === 'string') {
    file = path.resolve(model);
  } else {
    temp = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-verify-'));
    file = path.join(temp, 'model.pt');
    fs.writeFileSync(file, model, { mode: 0o600 });
  }
  try {
    return await runChild(file, settings);
  } finally {
    if (temp) fs.rmSync(temp, { recursive: true, force: true });
  }
}

/** The child's answer (lib/verify-child.ts). */
interface Verdict {
  ok?: boolean;
  code?: ErrorCode;
  message?: string;
  report?: VerifyReport;
}

// The child's stderr kept for the error message: its end, at most this many characters.
const MAX_STDERR = 16 * 1024;

/** The extractor options the child loads with: the real load's, or the CPU's defaults. */
function childOptions(settings: ReturnType<typeof check>): Record<string, unknown> {
  const given = settings.options ? ownProperties(settings.options) : {};
  const options: Record<string, unknown> = { device: 'cpu' };
  for (const key of ['device', 'dtype', 'channelsLast', 'optimize', 'winograd', 'tf32', 'pool', 'normalize']) {
    if (given[key] !== undefined && given[key] !== '') options[key] = given[key];
  }
  options.allowUnsafeOperations = settings.allowUnsafeOperations;
  return options;
}

function runChild(file: string, settings: ReturnType<typeof check>): Promise<VerifyReport> {
  return new Promise((resolve, reject) => {
    const request = { file, layer: settings.layer, inputShape: settings.inputShape, options: childOptions(settings) };
    let settled = false;
    const settle = (error: ExtractorError | undefined, report?: VerifyReport) => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(report!);
    };
    const rejected = (why: string) => new ExtractorError('MODEL_REJECTED', `the model was rejected: ${why}`);
    // The verdict comes over the IPC channel, which the model's code cannot write to (its print()
    // goes to stdout, which is not even read). In Electron, process.execPath is the app: it runs
    // as plain Node.
    const child = spawn(process.execPath, [CHILD], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
      env: process.versions.electron ? { ...process.env, ELECTRON_RUN_AS_NODE: '1' } : process.env,
    });
    let stderr = '';
    let peak = 0;
    let killedFor: string | undefined;
    let verdict: Verdict | undefined;
    child.stderr?.on('data', (chunk) => (stderr = (stderr + chunk).slice(-MAX_STDERR)));
    child.on('message', (message) => (verdict ??= message as Verdict));
    child.on('error', (error) => {
      child.kill('SIGKILL');
      settle(rejected(`the child process to try it in could not be started (${error.message})`));
    });
    child.send(request, (error) => {
      if (error) child.kill('SIGKILL');
    });
    const watch = setInterval(() => {
      const rss = child.pid === undefined ? undefined : rssMiB(child.pid);
      if (rss !== undefined) peak = Math.max(peak, rss);
      if (rss !== undefined && rss > settings.maxMemoryMiB && !killedFor) {
        killedFor = `it used more than ${settings.maxMemoryMiB} MiB of memory (maxMemoryMiB)`;
        child.kill('SIGKILL');
      }
    }, POLL_MS);
    const timer = setTimeout(() => {
      if (!killedFor) killedFor = `it took longer than ${settings.timeoutMs} ms (timeoutMs)`;
      child.kill('SIGKILL');
    }, settings.timeoutMs);
    child.on('close', (code, signal) => {
      const tail = stderr.trim() ? ` (${stderr.trim().split('\n').pop()})` : '';
      if (killedFor) {
        settle(rejected(`loading and running it in a child process was stopped because ${killedFor}`));
      } else if (signal || code !== 0) {
        // Whatever it said before: a child that did not end cleanly is never a pass.
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        settle(rejected(`the child process that loaded it ${how}${tail}`));
      } else if (verdict?.ok && verdict.report) {
        settle(undefined, { ...verdict.report, peakMemoryMiB: Math.max(peak, verdict.report.peakMemoryMiB) });
      } else if (verdict?.code) {
        settle(new ExtractorError(verdict.code, verdict.message ?? 'the model could not be used'));
      } else {
        settle(rejected(`the child process that loaded it ended without a verdict${tail}`));
      }
    });
  });
}

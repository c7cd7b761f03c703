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
  if (!Array.isArray(inputShape) || inputShape.length !== 4 || !inputShape.every((d) => Number.isInteger(d) && d > 0 && d <= 4096)) {
    throw bad(`Expected [N, C, H, W] positive integers for inputShape but received ${describe(inputShape)}`);
  }
  return { layer: options.layer, inputShape, timeoutMs, maxMemoryMiB, allowUnsafeOperations: options.allowUnsafeOperations ?? false };
}

/**
 * Loads `model` in a child process, cuts it and runs one forward on zeros, within time and memory
 * limits. Resolves with what it found; rejects with the in-process error's code when the model is
 * simply unusable (MODEL_LOAD_FAILED, LAYER_NOT_FOUND, UNSAFE_MODEL, ...), and with MODEL_REJECTED
 * when the child crashed, ran out of time or went over its memory limit.
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

function runChild(file: string, settings: ReturnType<typeof check>): Promise<VerifyReport> {
  return new Promise((resolve, reject) => {
    const request = JSON.stringify({
      file,
      layer: settings.layer,
      inputShape: settings.inputShape,
      allowUnsafeOperations: settings.allowUnsafeOperations,
    });
    const child = spawn(process.execPath, [CHILD, request], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peak = 0;
    let killedFor: string | undefined;
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
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
      clearInterval(watch);
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      let message: { ok?: boolean; code?: ErrorCode; message?: string; report?: VerifyReport } = {};
      try {
        message = JSON.parse(last);
      } catch {
        // no report: the child died
      }
      if (killedFor) {
        reject(
          new ExtractorError(
            'MODEL_REJECTED',
            `the model was rejected: loading and running it in a child process was stopped because ${killedFor}`,
          ),
        );
      } else if (message.ok && message.report) {
        resolve({ ...message.report, peakMemoryMiB: Math.max(peak, message.report.peakMemoryMiB) });
      } else if (message.code) {
        reject(new ExtractorError(message.code, message.message ?? 'the model could not be used'));
      } else {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        reject(
          new ExtractorError(
            'MODEL_REJECTED',
            `the model was rejected: the child process that loaded it ${how}${stderr.trim() ? ` (${stderr.trim().split('\n').pop()})` : ''}`,
          ),
        );
      }
    });
  });
}

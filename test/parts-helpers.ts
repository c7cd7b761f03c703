/** Helpers of the folder-of-parts and queue tests: the CLI in child processes with time limits, images, .npy files. */
import * as assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import sharp from 'sharp';

export const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.js');
/** Every child process gets this long; a hang is a failure, not a stuck suite. */
export const CHILD_TIMEOUT_MS = 120_000;
/**
 * One LibTorch thread per process: three workers share two cores here, and the single-process
 * reference runs with the same count so that nothing but the parts can differ.
 */
export const CHILD_ENV = { ...process.env, OMP_NUM_THREADS: '1', LTF_DEBUG: '' };

export function cli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: CHILD_TIMEOUT_MS,
    cwd: options.cwd,
    env: { ...CHILD_ENV, ...options.env },
  });
}

/** The CLI started in the background, its stderr collected. */
export function cliChild(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; execArgv?: string[] } = {},
): ChildProcess & { stderrText: () => string } {
  const child = spawn(process.execPath, [...(options.execArgv ?? []), CLI, ...args], {
    cwd: options.cwd,
    env: { ...CHILD_ENV, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
  child.on('exit', () => clearTimeout(timer));
  return Object.assign(child, { stderrText: () => stderr });
}

/** Resolves with the exit code (or the signal's name) of a child. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? child.signalCode!);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal!)));
}

/** Polls until `condition` holds, failing after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = CHILD_TIMEOUT_MS): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Exit `code`, and stderr one line matching `message`, without a stack trace. */
export function expectOneLine(run: SpawnSyncReturns<string>, message: RegExp, code = 1): void {
  assert.equal(run.signal, null, `killed by ${run.signal}: ${run.stderr}`);
  assert.equal(run.status, code, `exit ${run.status}: ${run.stderr}`);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr: ${run.stderr}`);
  assert.match(lines[0], message);
  assert.doesNotMatch(run.stderr, /^\s+at /m, 'no stack trace');
}

/** `count` different photos (the demo's cat, turned and scaled) as PNGs in `dir`, named 00.png, 01.png... */
export async function makePhotos(dir: string, count: number, size = 160): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const photo = path.join(__dirname, '..', '..', 'examples', 'chelsea.png');
  const files = [];
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, `${String(i).padStart(2, '0')}.png`);
    await sharp(photo)
      .rotate((i * 23) % 360)
      .resize(size + 7 * i)
      .png()
      .toFile(file);
    files.push(file);
  }
  return files;
}

/** A folder's entries, sorted; hidden temporaries included. */
export function list(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/** Asserts that two files hold the same bytes. */
export function sameBytes(actual: string, expected: string): void {
  const [a, b] = [fs.readFileSync(actual), fs.readFileSync(expected)];
  assert.ok(a.equals(b), `${actual} (${a.length} bytes) differs from ${expected} (${b.length} bytes)`);
}

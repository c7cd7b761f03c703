/**
 * The files a command writes. Each output is checked before any work (its folder exists, it is not
 * a folder), then written to a temporary file beside it, created exclusively (O_EXCL) under a name
 * with a random part, so that nothing planted there, a symlink say, is ever followed; the
 * temporaries are renamed over the outputs at the end, or removed: on an error, on exit, and
 * synchronously on a second Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { CliError, oneLine } from './errors';

/** Temporary files of this process not yet renamed or removed. */
const live = new Set<string>();
let exitHook = false;

function reason(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return 'permission denied';
  if (e.code === 'EROFS') return 'read-only file system';
  if (e.code === 'ENOSPC') return 'no space left on the device';
  return oneLine(e.message ?? String(error));
}

/** Throws a CliError unless `file` can be an output: its folder exists, and it is not a folder. */
export function checkOutput(file: string): void {
  if (file === '' || /[\\/]$/.test(file)) throw new CliError(`cannot write '${file}': not a file name`);
  const dir = path.dirname(file);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    throw new CliError(`cannot write ${file}: no such folder ${dir}`);
  }
  if (!stat.isDirectory()) throw new CliError(`cannot write ${file}: ${dir} is not a folder`);
  let existing: fs.Stats | undefined;
  try {
    existing = fs.statSync(file);
  } catch {
    // absent (or a dangling symlink, which the final rename replaces): fine
  }
  if (existing?.isDirectory()) throw new CliError(`cannot write ${file}: it is a folder`);
}

/** Writes all of `data` at the file position. */
export function writeAll(fd: number, data: Uint8Array): void {
  for (let done = 0; done < data.byteLength;) done += fs.writeSync(fd, data, done);
}

/** Removes this process's temporary files now; for signal handlers and exit. */
export function removeTempsSync(): void {
  for (const temp of live) {
    try {
      fs.unlinkSync(temp);
    } catch {
      // gone already
    }
    live.delete(temp);
  }
}

/** A set of outputs being written: a temporary file each, renamed over them all by commit(). */
export class Outputs {
  readonly finals: readonly string[];
  readonly temps: string[] = [];
  /** The open temporary files, in the order of `finals`. */
  readonly fds: number[] = [];
  #done = false;

  /** Checks every output, then creates the temporary files; throws a CliError, leaving nothing, if one cannot be written. */
  constructor(finals: readonly string[]) {
    this.finals = finals;
    finals.forEach(checkOutput);
    if (!exitHook) {
      process.on('exit', removeTempsSync);
      exitHook = true;
    }
    try {
      for (const file of finals) {
        const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.partial`);
        let fd: number;
        try {
          // 'wx': O_CREAT | O_EXCL, which fails on anything already there, a symlink included.
          fd = fs.openSync(temp, 'wx');
        } catch (error) {
          throw new CliError(`cannot write ${file}: ${reason(error)}`);
        }
        live.add(temp);
        this.temps.push(temp);
        this.fds.push(fd);
      }
    } catch (error) {
      this.discard();
      throw error;
    }
  }

  /** Closes the temporary files and renames them over the outputs; on a failure removes what it renamed and the rest. */
  commit(): void {
    const renamed: string[] = [];
    try {
      while (this.fds.length > 0) fs.closeSync(this.fds.shift()!);
      this.finals.forEach(checkOutput); // a folder created meanwhile would take only some of the outputs
      this.finals.forEach((file, i) => {
        try {
          fs.renameSync(this.temps[i], file);
        } catch (error) {
          throw new CliError(`cannot write ${file}: ${reason(error)}`);
        }
        live.delete(this.temps[i]);
        renamed.push(file);
      });
      this.#done = true;
    } catch (error) {
      for (const file of renamed) fs.rmSync(file, { force: true });
      this.discard();
      throw error;
    }
  }

  /** Closes and removes the temporary files (after commit(), nothing to do). */
  discard(): void {
    if (this.#done) return;
    this.#done = true;
    for (const fd of this.fds) {
      try {
        fs.closeSync(fd);
      } catch {
        // closed already
      }
    }
    this.fds.length = 0;
    for (const temp of this.temps) {
      if (!live.has(temp)) continue;
      fs.rmSync(temp, { force: true });
      live.delete(temp);
    }
  }
}

/**
 * Handles Ctrl-C and SIGTERM while a command writes: the first calls `abort` (when given) so that
 * the command stops and cleans up; the next one, or the first without `abort`, removes the
 * temporary files synchronously and exits with 130, saying `left` (what stays). Returns a
 * function that removes the handlers.
 */
export function handleInterrupts(name: string, abort?: () => void, left = 'nothing was written'): () => void {
  let count = 0;
  const handler = () => {
    count++;
    if (abort && count === 1) {
      abort();
      return;
    }
    removeTempsSync();
    process.stderr.write(`${name}: interrupted${count > 1 ? ' again' : ''}: ${left}\n`);
    process.exit(130);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.removeListener('SIGINT', handler);
    process.removeListener('SIGTERM', handler);
  };
}

/**
 * The parts of a folder as jobs on a BullMQ queue (Redis): `queue add` prepares the folder and
 * enqueues one job per part not yet complete, `queue status` counts them. The queue, its retries and
 * its stalled-job handling are BullMQ's; a job holds only the folder and the part's number, the
 * workers read the rest from the folder's manifest on the shared file system (queue-worker.ts).
 * bullmq is loaded only by these commands, so that the others start as fast as before.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { ConnectionOptions, Queue } from 'bullmq';

import { Extractor } from '../extractor';
import { PartsError, UsageError, oneLine } from './errors';
import { partOptions, plannedManifest } from './extract-folder';
import type { FolderOptions } from './extract-folder';
import { partState, prepareFolder, writeManifest } from './parts-folder';
import { type Manifest, manifestId } from './parts-manifest';

/** What a job carries: the folder (absolute), the part's number, and the manifest's id it was added for. */
export interface PartJob {
  dir: string;
  part: number;
  id: string;
}

export const JOB_NAME = 'part';
/** The most attempts a job may be given (`--attempts`). */
export const MAX_ATTEMPTS = 100;
// How long a first connection may take before the command gives up, and how often it tries.
const CONNECT_TIMEOUT_MS = 5000;
const CONNECT_TRIES = 3;

/** A redis:// or rediss:// URL, or a usage CliError. */
export function checkRedisUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError('--redis', JSON.stringify(value.slice(0, 100)), 'expected a URL such as redis://127.0.0.1:6379');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new UsageError('--redis', redact(value), `expected a redis:// or rediss:// URL, not ${url.protocol}`);
  }
  return value;
}

/** A queue name BullMQ takes (it refuses ':'), short enough for Redis keys to stay readable. */
export function checkQueueName(value: string): string {
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(value)) {
    throw new UsageError('--queue', JSON.stringify(value.slice(0, 100)), "expected 1 to 100 letters, digits, '_', '.' or '-'");
  }
  return value;
}

/** The URL without its password, for messages. */
export function redact(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(an invalid URL)';
  }
}

/**
 * ioredis options for `url`: until `connected()` says so, a few tries and then an error (a wrong
 * URL fails in seconds, not never); afterwards, reconnect for as long as it takes.
 */
export function connectionOptions(url: string, connected: () => boolean): ConnectionOptions {
  return {
    url,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: (times: number) => (connected() ? Math.min(times * 500, 5000) : times >= CONNECT_TRIES ? null : 500),
  };
}

/** A failure to reach Redis, as one line, with what to check. */
export function redisError(url: string, error: unknown): PartsError {
  const why = oneLine(String((error as Error)?.message ?? error)) || 'the connection closed';
  const hint = /^(NOAUTH|WRONGPASS)|AUTH/.test(why)
    ? 'check the user and password in the URL: redis://user:password@host:port'
    : 'is redis-server running there, and reachable from here?';
  return new PartsError('REDIS_UNAVAILABLE', `cannot use Redis at ${redact(url)}: ${why} (${hint})`);
}

/** Opens a queue and waits until Redis answers; throws REDIS_UNAVAILABLE. */
export async function openQueue(url: string, name: string): Promise<Queue> {
  const { Queue } = await import('bullmq');
  let connected = false;
  let lastError: unknown;
  const queue = new Queue(name, { connection: connectionOptions(url, () => connected) });
  queue.on('error', (error) => (lastError = error));
  try {
    await queue.waitUntilReady();
    connected = true;
    return queue;
  } catch (error) {
    await queue.close().catch(() => undefined);
    throw redisError(url, lastError ?? error);
  }
}

export interface AddOptions extends Omit<FolderOptions, 'resume' | 'shard' | 'quiet' | 'signal' | 'device'> {
  redis: string;
  queue: string;
  /** Tries per job before it ends as failed (the first included). */
  attempts: number;
}

/** The job id of a part: the same part of the same extraction is never queued twice (BullMQ keeps ids unique). */
export function jobId(manifest: Manifest, part: number): string {
  return `${manifestId(manifest)}-${manifest.parts[part].name}`;
}

/** Runs Redis commands; what they throw becomes REDIS_UNAVAILABLE. */
async function redisCall<T>(url: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw redisError(url, error);
  }
}

/**
 * Prepares the folder (the manifest written, or the one there checked) and enqueues one job per
 * part that is not complete. A part whose job already ended (completed, yet its files are gone;
 * or failed) is queued again; a job still waiting or running is left as it is.
 */
export async function queueAdd(
  model: string,
  inputs: readonly string[],
  options: AddOptions,
): Promise<{ added: number; parts: number; complete: number }> {
  if (!Number.isInteger(options.attempts) || options.attempts < 1 || options.attempts > MAX_ATTEMPTS) {
    throw new UsageError('--attempts', String(options.attempts), `expected 1 to ${MAX_ATTEMPTS}`);
  }
  const wanted = await plannedManifest(model, inputs, options.layer, partOptions(options), options.partSize, options.dir);
  const dir = path.resolve(options.dir);
  const { existing, created } = prepareFolder(dir, wanted, true);
  let manifest = existing;
  let queue: Queue | undefined;
  try {
    queue = await openQueue(options.redis, options.queue);
    // The layers are checked here, once, rather than by every worker after the jobs are queued.
    if (!existing) (await Extractor.create(model, options.layer, { device: 'cpu' })).dispose();
    manifest ??= writeManifest(dir, wanted);
    const folder = manifest;
    const todo = folder.parts.map((_, i) => i).filter((i) => !partState(dir, folder, folder.parts[i]).complete);
    const open = queue;
    const jobs = await redisCall(options.redis, async () => {
      const jobs = [];
      for (const i of todo) {
        const id = jobId(folder, i);
        const job = await open.getJob(id);
        const state = job ? await job.getState() : 'unknown';
        if (state === 'completed' || state === 'failed') await job!.remove();
        else if (state !== 'unknown') continue;
        const data: PartJob = { dir, part: i, id: manifestId(folder) };
        const opts = {
          jobId: id,
          attempts: options.attempts,
          backoff: { type: 'exponential', delay: 1000 },
          removeOnComplete: false,
          removeOnFail: false,
        };
        jobs.push({ name: JOB_NAME, data, opts });
      }
      await open.addBulk(jobs);
      return jobs;
    });
    return { added: jobs.length, parts: folder.parts.length, complete: folder.parts.length - todo.length };
  } finally {
    await queue?.close().catch(() => undefined);
    if (created && !manifest) {
      try {
        fs.rmdirSync(dir);
      } catch {
        // not empty: another process's
      }
    }
  }
}

/** The queue's counts, and the reasons of the latest failed jobs (at most `failures`). */
export async function queueStatus(
  url: string,
  name: string,
  failures = 10,
): Promise<{ done: number; waiting: number; active: number; failed: number; workers: number; failedJobs: string[] }> {
  const queue = await openQueue(url, name);
  try {
    return await redisCall(url, async () => {
      const counts = await queue.getJobCounts('completed', 'waiting', 'delayed', 'prioritized', 'active', 'failed');
      const failed = await queue.getFailed(0, failures - 1);
      return {
        done: counts.completed ?? 0,
        // Retries waiting out their backoff are delayed jobs: still to be done.
        waiting: (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0),
        active: counts.active ?? 0,
        failed: counts.failed ?? 0,
        workers: await queue.getWorkersCount(),
        failedJobs: failed.map((job) => `${job.id} (${(job.data as PartJob)?.dir}): ${oneLine(job.failedReason ?? '')}`),
      };
    });
  } finally {
    await queue.close().catch(() => undefined);
  }
}

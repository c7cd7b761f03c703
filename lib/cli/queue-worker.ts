/**
 * `libtorch-features queue work`: a BullMQ worker that runs parts until stopped. One job at a time
 * (LibTorch already uses every core for one forward), one extractor per model and options, loaded
 * at the first job that needs it and kept. The first SIGTERM or Ctrl-C finishes the part in flight
 * and exits; a second stops at once. A worker that dies mid-part (SIGKILL, a crash, a lost machine)
 * leaves only hidden temporaries, and its job's lock runs out: BullMQ's stalled-job check in the
 * other workers puts the job back, up to MAX_STALLS times, after which it ends as failed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Job, Worker } from 'bullmq';

import { ExtractorError } from '../errors';
import { Extractor } from '../extractor';
import type { ExtractorOptions } from '../types';
import { CliError, PartsError, oneLine } from './errors';
import { JOB_NAME, type PartJob, connectionOptions, redisError } from './job-queue';
import { removeTempsSync } from './outputs';
import { partState, runPart } from './parts-folder';
import { type Manifest, manifestId, readManifest, sha256File } from './parts-manifest';

/** How often a job may be found stalled (its worker gone) and put back before it fails: a part that kills every worker ends. */
export const MAX_STALLS = 2;
/**
 * Errors that another attempt cannot mend: the job fails at once instead of trying again. A
 * missing model or folder is not one of them: another worker may have the shared file system
 * that this one lacks.
 */
const FINAL_CODES = new Set([
  'JOB_INVALID',
  'MANIFEST_INVALID',
  'MANIFEST_MISMATCH',
  'MODEL_LOAD_FAILED',
  'UNSAFE_MODEL',
  'LAYER_NOT_FOUND',
  'UNSUPPORTED_CUT',
  'INVALID_ARGUMENT',
  'DEVICE_UNAVAILABLE',
]);

export interface WorkOptions {
  redis: string;
  queue: string;
  device: NonNullable<ExtractorOptions['device']>;
  /** Seconds a job's lock lasts without renewal: how soon a dead worker's part goes to another. */
  stalledSeconds: number;
  /** No line per part. */
  quiet: boolean;
  /** Resolves once the worker runs; for tests and the library. */
  onReady?: (worker: Worker) => void;
}

function checkJob(data: unknown): PartJob {
  const job = data as Partial<PartJob> | null;
  if (
    typeof job !== 'object' ||
    job === null ||
    typeof job.dir !== 'string' ||
    !path.isAbsolute(job.dir) ||
    !Number.isInteger(job.part) ||
    (job.part as number) < 0 ||
    typeof job.id !== 'string'
  ) {
    throw new PartsError('JOB_INVALID', 'a job whose data is not { dir, part, id }: not added by libtorch-features queue add');
  }
  return job as PartJob;
}

/** Manifests read by this worker, kept while the file is unchanged (a manifest of millions of inputs is read once). */
class Manifests {
  #cache = new Map<string, { key: string; manifest: Manifest }>();

  get(dir: string): Manifest {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(path.join(dir, 'manifest.json'));
    } catch {
      throw new CliError(`${dir} holds no manifest.json here (is it on a file system that this worker shares?)`);
    }
    const key = `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
    const cached = this.#cache.get(dir);
    if (cached?.key === key) return cached.manifest;
    const manifest = readManifest(dir)!;
    this.#cache.set(dir, { key, manifest });
    return manifest;
  }
}

/** One extractor per model file and options, loaded once; the model file must still be the one the manifest hashed. */
class Extractors {
  #loaded = new Map<string, Promise<Extractor<string[]>>>();
  #device: WorkOptions['device'];

  constructor(device: WorkOptions['device']) {
    this.#device = device;
  }

  get(manifest: Manifest): Promise<Extractor<string[]>> {
    const { model, layers, options } = manifest;
    const key = JSON.stringify([
      model.path,
      model.sha256,
      layers,
      options.dtype,
      options.pool,
      options.normalize,
      options.optimize,
      options.winograd,
    ]);
    let extractor = this.#loaded.get(key);
    if (!extractor) {
      extractor = (async () => {
        const sha256 = await sha256File(model.path);
        if (sha256 !== model.sha256) {
          throw new PartsError('MANIFEST_MISMATCH', `the model ${model.path} changed since the folder was made (its sha256 differs)`);
        }
        return Extractor.create(model.path, layers, {
          device: this.#device,
          dtype: options.dtype,
          pool: options.pool ?? undefined,
          normalize: options.normalize ?? undefined,
          optimize: options.optimize,
          winograd: options.winograd,
        });
      })();
      this.#loaded.set(key, extractor);
      extractor.catch(() => this.#loaded.delete(key));
    }
    return extractor;
  }

  async dispose(): Promise<void> {
    for (const extractor of this.#loaded.values()) (await extractor.catch(() => undefined))?.dispose();
    this.#loaded.clear();
  }
}

/** Runs jobs until a signal stops it; resolves when the worker has closed (0) or rejects when Redis cannot be reached. */
export async function queueWork(options: WorkOptions): Promise<{ parts: number; failed: number }> {
  const { Worker, UnrecoverableError } = await import('bullmq');
  const log = (line: string) => options.quiet || process.stderr.write(`libtorch-features: worker ${process.pid}: ${line}\n`);
  const manifests = new Manifests();
  const extractors = new Extractors(options.device);
  const stopAtOnce = new AbortController();
  const counts = { parts: 0, failed: 0 };

  const processor = async (job: Job) => {
    try {
      if (job.name !== JOB_NAME) throw new PartsError('JOB_INVALID', `a job named ${JSON.stringify(job.name)}, not ${JOB_NAME}`);
      const data = checkJob(job.data);
      const manifest = manifests.get(data.dir);
      if (manifestId(manifest) !== data.id)
        throw new PartsError('MANIFEST_MISMATCH', `${data.dir} holds another extraction than when this job was added`);
      const part = manifest.parts[data.part];
      if (!part) throw new PartsError('JOB_INVALID', `${data.dir} has no part ${data.part}`);
      // Another worker may have finished it after this job's first worker stalled.
      const state = partState(data.dir, manifest, part);
      if (state.complete) {
        log(`${part.name} of ${data.dir} is complete already`);
        return { rows: state.rows, skipped: 0 };
      }
      log(`${part.name} of ${data.dir} started (attempt ${job.attemptsMade + 1})`);
      const started = Date.now();
      const extractor = await extractors.get(manifest);
      const result = await runPart(extractor, manifest, data.dir, part, { signal: stopAtOnce.signal, warn: log, tick: () => undefined });
      log(`${part.name} done: ${result.rows} row${result.rows === 1 ? '' : 's'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      counts.parts++;
      return result;
    } catch (error) {
      const e = error as Error & { code?: string };
      const message = oneLine(e instanceof ExtractorError || e instanceof PartsError ? `${e.code}: ${e.message}` : String(e?.message ?? e));
      // The job's failedReason is this line; errors another attempt cannot mend fail at once.
      throw e.code && FINAL_CODES.has(e.code) ? new UnrecoverableError(message) : new Error(message);
    }
  };

  let connected = false;
  let lastError: unknown;
  const lockDuration = options.stalledSeconds * 1000;
  const worker = new Worker(options.queue, processor, {
    connection: connectionOptions(options.redis, () => connected),
    autorun: false,
    concurrency: 1,
    lockDuration,
    stalledInterval: lockDuration,
    maxStalledCount: MAX_STALLS,
  });
  worker.on('error', (error) => {
    lastError = error;
    if (connected) log(`Redis: ${oneLine(String(error?.message ?? error))}`);
  });
  worker.on('failed', (job, error) => {
    counts.failed++;
    const attempts = job?.opts.attempts ?? 1;
    const final = !job || job.attemptsMade >= attempts || error instanceof UnrecoverableError;
    log(
      `${job?.id ?? 'a job'} failed${final ? '' : ` (attempt ${job.attemptsMade} of ${attempts}, to be tried again)`}: ${oneLine(error.message)}`,
    );
  });
  try {
    await worker.waitUntilReady();
  } catch (error) {
    await worker.close(true).catch(() => undefined);
    throw redisError(options.redis, lastError ?? error);
  }
  connected = true;

  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals === 1) {
      log('stopping after the part in flight (again to stop at once)');
      void worker.close();
      return;
    }
    // The part in flight is left to another worker once its lock runs out.
    stopAtOnce.abort();
    removeTempsSync();
    process.stderr.write(`libtorch-features: worker ${process.pid}: stopped at once; the part in flight goes back to the queue\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    log(`waiting for jobs on ${options.queue}`);
    options.onReady?.(worker);
    await worker.run();
    await worker.close();
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await extractors.dispose();
  }
  return counts;
}

/**
 * The commands of more than one machine: `merge` (a folder of parts into one .npy) and `queue add`,
 * `queue work`, `queue status` (parts as jobs on BullMQ). See README, "More than one machine".
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';

import { addExtractionOptions, addQueueOptions, deviceOption, positiveInteger } from './command-options';
import { queueAdd, queueStatus } from './job-queue';
import { mergeFolder } from './merge';
import { handleInterrupts } from './outputs';
import { queueWork } from './queue-worker';

// Seconds without a lock renewal before a job counts as stalled: BullMQ's default lockDuration.
const DEFAULT_STALLED_SECONDS = 30;
// A day: a lock longer than that is no longer a way to find dead workers.
const MAX_STALLED_SECONDS = 86_400;
// Tries per job: enough for a passing fault (a file system hiccup), few enough that a bad part ends soon.
const DEFAULT_ATTEMPTS = 3;

export function addQueueCommands(cli: Command, name: string): void {
  cli
    .command('merge')
    .description('the parts of a folder (extract --out DIR/, or the queue) as one .npy per layer and one index, in input order')
    .argument('<dir>', 'the folder of parts')
    .requiredOption('--out <file>', 'the .npy file (with several layers: <out>.<layer>.npy); the index goes to <out>.index.csv')
    .option('--quiet', 'no summary line')
    .action(async (dir: string, options: { out: string; quiet?: boolean }) => {
      const restore = handleInterrupts(name);
      try {
        const result = await mergeFolder(dir, options.out);
        if (!options.quiet) console.error(`${name}: merged ${result.parts} parts (${result.rows} rows) into ${result.files.join(', ')}`);
      } finally {
        restore();
      }
    });

  const queue = cli.command('queue').description('extraction by workers on a BullMQ job queue (Redis), one job per part');

  const add = queue
    .command('add')
    .description('prepare a folder of parts and queue one job per part not yet complete')
    .argument('<model>', 'a TorchScript file, at a path every worker can read')
    .argument('<inputs...>', 'image files, folders of them, videos: paths every worker can read')
    .requiredOption('--out <dir>', 'the folder of parts, on a file system every worker shares');
  addQueueOptions(addExtractionOptions(add))
    .option('--attempts <n>', `tries per job before it ends as failed (default ${DEFAULT_ATTEMPTS})`, positiveInteger, DEFAULT_ATTEMPTS)
    .action(async (model: string, inputs: string[], options) => {
      const { out, ...rest } = options;
      const result = await queueAdd(model, inputs, {
        ...rest,
        dir: out,
        partSize: options.partSize,
        skipUnreadable: Boolean(options.skipUnreadable),
      });
      console.error(
        `${name}: queued ${result.added} part${result.added === 1 ? '' : 's'} on ${options.queue}; ${result.complete} of ${result.parts} complete already`,
      );
    });

  addQueueOptions(queue.command('work'))
    .description('run jobs until stopped (SIGTERM or Ctrl-C finishes the part in flight; a second stops at once)')
    .addOption(deviceOption())
    .addOption(
      new Option('--stalled-seconds <n>', "how long a dead worker's part waits before another worker takes it up")
        .argParser((value) => {
          const n = positiveInteger(value);
          if (n > MAX_STALLED_SECONDS) throw new InvalidArgumentError(`expected 1 to ${MAX_STALLED_SECONDS}`);
          return n;
        })
        .default(DEFAULT_STALLED_SECONDS),
    )
    .option('--quiet', 'no line per part')
    .action(async (options) => {
      await queueWork({ ...options, quiet: Boolean(options.quiet) });
    });

  addQueueOptions(queue.command('status'))
    .description('how many jobs are done, waiting, active and failed, and why the latest failed')
    .action(async (options: { redis: string; queue: string }) => {
      const status = await queueStatus(options.redis, options.queue);
      console.log(
        `done ${status.done}, waiting ${status.waiting}, active ${status.active}, failed ${status.failed}, workers ${status.workers}`,
      );
      for (const line of status.failedJobs) console.log(`failed ${line}`);
    });
}

/**
 * Options that several commands share, parsed once: `extract` and `queue add` describe an
 * extraction the same way, `queue work/status/add` reach Redis the same way. A bad value is a
 * usage error (exit 2) naming the option, raised by commander before anything runs.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';

import { UsageError } from './errors';
import { checkQueueName, checkRedisUrl } from './job-queue';
import { DEFAULT_PART_SIZE, checkPartSize, parseShard } from './parts-manifest';

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('expected a positive number');
  return n;
}

/** A parser that turns our CliError into commander's usage error, with our message. */
function usage<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (error) {
      if (error instanceof UsageError) throw new InvalidArgumentError(error.reason);
      throw error;
    }
  };
}

export const partSize = usage((value) => checkPartSize(/^\s*$/.test(value) ? NaN : Number(value)));
export const shard = usage(parseShard);
const redisUrl = usage(checkRedisUrl);
const queueName = usage(checkQueueName);

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export const deviceOption = () => new Option('--device <device>', "'auto', 'cpu', 'cuda' or 'cuda:N'").default('auto');

/** The options that say what an extraction computes: `extract` and `queue add`. */
export function addExtractionOptions(command: Command): Command {
  return command
    .requiredOption('--layer <name>', 'a layer to extract; repeat for several (one .npy each)', collect)
    .addOption(new Option('--pool <kind>', 'pool each feature map: [N, C, H, W] to [N, C]').choices(['avg', 'max']))
    .addOption(new Option('--normalize <kind>', 'scale each row to unit norm').choices(['l2']))
    .option('--batch <n>', 'images per forward', positiveInteger, 32)
    .addOption(
      new Option('--dtype <dtype>', 'compute precision (results are float32)')
        .choices(['float32', 'float16', 'bfloat16'])
        .default('float32'),
    )
    .option('--fps <n>', 'frames per second sampled from videos', positiveNumber, 1)
    .option('--no-optimize', "run the model as it is, without LibTorch's inference optimisations (see BENCHMARKS.md)")
    .option('--no-winograd', "on the CPU, keep convolutions' direct algorithm: less memory, slower (see README, 'winograd')")
    .option('--skip-unreadable', 'skip images that cannot be decoded or that the model refuses, with a warning each')
    .option('--part-size <n>', `with --out DIR/: inputs per part (default ${DEFAULT_PART_SIZE})`, partSize);
}

/** --redis and --queue: where the jobs are. */
export function addQueueOptions(command: Command): Command {
  return command
    .requiredOption('--redis <url>', 'the Redis server, redis://[user:password@]host:port[/db] or rediss:// (TLS)', redisUrl)
    .requiredOption('--queue <name>', "the queue's name (letters, digits, '_', '.', '-')", queueName);
}

#!/usr/bin/env node
/**
 * The libtorch-features command line: layers, extract, maps, merge, queue, rebuild. Every failure
 * is one line on stderr and a non-zero exit code (2 for bad usage); LTF_DEBUG=1 adds the stack.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Command, InvalidArgumentError } from 'commander';

import { ExtractorError } from '../errors';
import { Extractor } from '../extractor';
import { addExtractionOptions, deviceOption, shard } from './command-options';
import { CliError, PartsError, oneLine } from './errors';
import { runExtract } from './extract';
import { extractToFolder } from './extract-folder';
import { runMaps } from './maps';
import { handleInterrupts, removeTempsSync } from './outputs';
import { addQueueCommands } from './queue-commands';

const NAME = 'libtorch-features';

function shapeList(value: string): number[] {
  const dims = value.split(',').map((d) => Number(d.trim()));
  if (dims.length === 0 || !dims.every((d) => Number.isInteger(d) && d > 0))
    throw new InvalidArgumentError('expected sizes such as 3,224,224');
  return dims;
}

/** Whether `--out` names a folder of parts: a trailing slash, or a folder that exists. */
function isFolder(out: string): boolean {
  if (/[\\/]$/.test(out)) return true;
  try {
    return fs.statSync(out).isDirectory();
  } catch {
    return false;
  }
}

export function program(): Command {
  const cli = new Command(NAME)
    .description('Features of any intermediate layer of a TorchScript CNN, from the command line.')
    .exitOverride()
    // One line, as every failure: the hint goes on it.
    .configureOutput({
      outputError: (text, write) => write(`${NAME}: ${text.replace(/^error: /, '').trimEnd()} (add --help for usage)\n`),
    });

  cli
    .command('layers')
    .description("list a model's layers in order, like named_children(): 0 conv1 Conv2d ... 9 fc Linear")
    .argument('<model>', 'a TorchScript file')
    .option('--nested', 'every module call that can be cut at (layer1.0.relu, layer1.0.relu_1, ...)')
    .option('--summary', "torchsummary's table: output shapes, parameters, totals")
    .option('--input <shape>', 'input shape for --summary, without the batch', shapeList, [3, 224, 224])
    .option('--layer <name>', 'summarise up to this layer (default: the last top-level child)')
    .action((model: string, options: { nested?: boolean; summary?: boolean; input: number[]; layer?: string }) => {
      const layers = Extractor.listLayers(model, { nested: options.nested });
      const width = String(layers.length - 1).length;
      for (const layer of layers) {
        // Nested: the kind of node too, as torchvision's names mix modules and functions.
        const kind = options.nested && layer.kind !== 'module' ? ` (${layer.kind})` : '';
        console.log(`${String(layer.index).padStart(width)} ${layer.name} ${layer.type}${kind}`);
      }
      if (options.summary) {
        const top = options.nested ? Extractor.listLayers(model) : layers;
        const ex = new Extractor(model, options.layer ?? top[top.length - 1].name, { device: 'cpu' });
        console.log(`\n${ex.summary(options.input).toString()}`);
        ex.dispose();
      }
    });

  const extract = cli
    .command('extract')
    .description('features of images, folders (recursively) and videos, to NumPy .npy files and an index, or to a folder of parts')
    .argument('<model>', 'a TorchScript file')
    .argument('<inputs...>', 'image files, folders of them, videos (needs ffmpeg)')
    .requiredOption(
      '--out <file|dir/>',
      'the .npy file (with several layers: <out>.<layer>.npy; the index goes to <out>.index.csv), or a folder of parts (a trailing / or an existing folder)',
    );
  addExtractionOptions(extract)
    .addOption(deviceOption())
    .option('--resume', 'with --out DIR/: keep the parts already complete (the folder must hold this extraction)')
    .option('--shard <K/N>', 'with --out DIR/: only the K-th of N slices of the parts (K from 0)', shard)
    .option('--quiet', 'no progress output')
    .action(async (model: string, inputs: string[], options) => {
      const folder = isFolder(options.out);
      if (!folder && (options.resume || options.shard || options.partSize !== undefined)) {
        throw new CliError('--resume, --shard and --part-size need --out DIR/ (a folder of parts)', 2);
      }
      const controller = new AbortController();
      // The first Ctrl-C stops after the batch in flight; a second removes the files at once.
      const restore = handleInterrupts(
        NAME,
        () => {
          process.stderr.write(`${NAME}: stopping after the batch in flight (Ctrl-C again to stop at once)\n`);
          controller.abort();
        },
        folder ? 'the part in flight was discarded' : 'nothing was written',
      );
      try {
        if (folder) {
          const { out, ...rest } = options;
          const result = await extractToFolder(model, inputs, {
            ...rest,
            dir: out,
            partSize: options.partSize,
            resume: Boolean(options.resume),
            signal: controller.signal,
            quiet: Boolean(options.quiet),
            skipUnreadable: Boolean(options.skipUnreadable),
          });
          if (result.skipped > 0) console.error(`${NAME}: skipped ${result.skipped} unreadable input${result.skipped === 1 ? '' : 's'}`);
          if (!options.quiet) {
            const slice = options.shard ? `shard ${options.shard.index}/${options.shard.count}: ` : '';
            console.error(
              `${NAME}: ${slice}wrote ${result.written} part${result.written === 1 ? '' : 's'} (${result.rows} rows) to ${out}; ${result.complete + result.written} of ${result.mine} complete` +
                (options.shard ? ` (${result.parts} parts in all)` : ''),
            );
          }
          return;
        }
        const result = await runExtract(model, inputs, {
          ...options,
          signal: controller.signal,
          quiet: Boolean(options.quiet),
          skipUnreadable: Boolean(options.skipUnreadable),
        });
        if (result.skipped > 0) console.error(`${NAME}: skipped ${result.skipped} unreadable input${result.skipped === 1 ? '' : 's'}`);
        if (!options.quiet) console.error(`${NAME}: wrote ${result.rows} rows to ${result.files.join(', ')}`);
      } finally {
        restore();
      }
    });

  cli
    .command('maps')
    .description("one image's feature maps at a layer as a grid picture, a tile per channel")
    .argument('<model>', 'a TorchScript file')
    .argument('<image>', 'an image file')
    .requiredOption('--layer <name>', 'the layer, e.g. layer4')
    .requiredOption('--out <file>', 'the PNG to write')
    .option('--overlay [file]', 'also draw the mean activation as a heat map over the image (default <out>.overlay.png)')
    .addOption(deviceOption())
    .action(async (model: string, image: string, options: { layer: string; out: string; overlay?: string | boolean; device: 'auto' }) => {
      const overlay = options.overlay === true ? options.out.replace(/(\.png)?$/i, '.overlay.png') : options.overlay || undefined;
      const restore = handleInterrupts(NAME);
      let result;
      try {
        result = await runMaps(model, image, { ...options, overlay });
      } finally {
        restore();
      }
      console.error(`${NAME}: ${options.layer} gives [${result.shape.join(', ')}]; wrote ${result.files.join(', ')}`);
    });

  addQueueCommands(cli, NAME);

  cli
    .command('rebuild')
    .description('build the native addon again (after npm blocked install scripts, or LibTorch moved)')
    .allowUnknownOption()
    .action((_options, command: Command) => {
      const script = path.join(__dirname, '..', '..', '..', 'scripts', 'build-native');
      const run = spawnSync(process.execPath, [script, '--force', ...command.args], { stdio: 'inherit' });
      if (run.status !== 0) throw new CliError('the build failed (see above)', run.status ?? 1);
    });

  return cli;
}

/** Runs the command line; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    const e = error as Error & { code?: string; exitCode?: number };
    if (e.code?.startsWith('commander.')) {
      // commander has printed its message (or the help, for --help and --version).
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : 2;
    }
    const message = oneLine(
      error instanceof ExtractorError || error instanceof PartsError ? `${e.code}: ${e.message}` : String(e?.message ?? error),
    );
    process.stderr.write(`${NAME}: ${message}\n`);
    if (process.env.LTF_DEBUG) process.stderr.write(`${e.stack}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  }
}

if (require.main === module) {
  // A bug of ours still ends as one line, without the temporary files.
  const fatal = (error: unknown) => {
    removeTempsSync();
    process.stderr.write(`${NAME}: internal error: ${oneLine(String((error as Error)?.message ?? error))}\n`);
    if (process.env.LTF_DEBUG) process.stderr.write(`${(error as Error)?.stack}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

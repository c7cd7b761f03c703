/**
 * The command line against inputs and outputs that fight back: unreadable images, outputs that
 * cannot be written, symlinks planted at temporary names, Ctrl-C twice. Every failure is one line
 * on stderr and a non-zero exit, and leaves nothing behind; nothing is written outside the outputs.
 */
import * as assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import sharp from 'sharp';

import { Outputs } from '../lib/cli/outputs';
import { CHAIN, RESNET18, readNpy } from './helpers';

const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.js');
const TIMEOUT = 120_000;

function cli(args: string[], options: { cwd?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: TIMEOUT, cwd: options.cwd });
}

/** Exit `code`, and stderr exactly one line matching `message`, without a stack trace. */
function expectOneLine(run: SpawnSyncReturns<string>, message: RegExp, code = 1): void {
  assert.equal(run.signal, null, `killed by ${run.signal}: ${run.stderr}`);
  assert.equal(run.status, code, `exit ${run.status}: ${run.stderr}`);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr: ${run.stderr}`);
  assert.match(lines[0], message);
  assert.doesNotMatch(run.stderr, /^\s+at /m, 'no stack trace');
}

/** A folder's entries, sorted. */
function list(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/** A fresh, empty folder for one test's outputs. */
function outFolder(name: string): string {
  const out = path.join(dir, 'out', name);
  fs.mkdirSync(out, { recursive: true });
  return out;
}

async function waitFor(what: string, condition: () => boolean, child: ChildProcess): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (child.exitCode !== null) throw new Error(`the CLI exited (${child.exitCode}) before ${what}`);
    if (Date.now() - started > TIMEOUT) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

let dir: string;
let mixed: string; // a.png b.png c.png (truncated) d.png (70,000 pixels wide) e.png
let good: string[];
let many: string; // 64 images
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-cli-hostile-'));
  mixed = path.join(dir, 'mixed');
  many = path.join(dir, 'many');
  fs.mkdirSync(mixed);
  fs.mkdirSync(many);
  const picture = (i: number) =>
    sharp({
      create: { width: 40 + i, height: 30, channels: 3, background: { r: (i * 40) % 256, g: 255 - ((i * 25) % 256), b: (i * 77) % 256 } },
    });
  for (const [i, name] of ['a', 'b', 'c', 'e'].entries())
    await picture(i)
      .png()
      .toFile(path.join(mixed, `${name}.png`));
  const whole = fs.readFileSync(path.join(mixed, 'c.png'));
  fs.writeFileSync(path.join(mixed, 'c.png'), whole.subarray(0, whole.length >> 1));
  // sharp decodes it; the extractor refuses a side over 65,536 (INVALID_INPUT).
  await sharp({ create: { width: 70_000, height: 2, channels: 3, background: 'red' } })
    .png()
    .toFile(path.join(mixed, 'd.png'));
  good = ['a', 'b', 'e'].map((name) => path.join(mixed, `${name}.png`));
  for (let i = 0; i < 64; i++)
    await picture(i)
      .png()
      .toFile(path.join(many, `${String(i).padStart(3, '0')}.png`));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('extract: unreadable inputs', () => {
  it('a truncated PNG mid-folder ends the run: one line naming it, exit 1, nothing left (batch 1 and 3)', () => {
    for (const batch of ['1', '3']) {
      const out = outFolder(`truncated-${batch}`);
      const run = cli(['extract', CHAIN, mixed, '--layer', 'head', '--out', path.join(out, 'f.npy'), '--batch', batch, '--quiet']);
      expectOneLine(run, /^libtorch-features: cannot read image .*c\.png: /);
      assert.deepEqual(list(out), []);
    }
  });

  it('an image the extractor refuses, in a batch of 3, is named: one line, exit 1, nothing left', () => {
    const out = outFolder('refused');
    const inputs = ['a', 'd', 'e'].map((name) => path.join(mixed, `${name}.png`));
    const run = cli(['extract', CHAIN, ...inputs, '--layer', 'head', '--out', path.join(out, 'f.npy'), '--batch', '3', '--quiet']);
    expectOneLine(run, /^libtorch-features: cannot extract features of .*d\.png: INVALID_INPUT: .*70000/);
    assert.deepEqual(list(out), []);
  });

  it('--skip-unreadable: a warning per file, the count, only the rows written, each the right one', () => {
    const out = outFolder('skip');
    const file = path.join(out, 'f.npy');
    const run = cli([
      'extract',
      CHAIN,
      mixed,
      '--layer',
      'head',
      '--pool',
      'avg',
      '--out',
      file,
      '--batch',
      '2',
      '--quiet',
      '--skip-unreadable',
    ]);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.stderr.trimEnd().split('\n'), [
      `libtorch-features: skipped unreadable input ${path.join(mixed, 'c.png')}: ${run.stderr.split('c.png: ')[1].split('\n')[0]}`,
      `libtorch-features: skipped unreadable input ${path.join(mixed, 'd.png')}: ${run.stderr.split('d.png: ')[1].split('\n')[0]}`,
      'libtorch-features: skipped 2 unreadable inputs',
    ]);
    assert.match(run.stderr, /c\.png: vipspng: /);
    assert.match(run.stderr, /d\.png: INVALID_INPUT: /);
    assert.deepEqual(list(out), ['f.index.csv', 'f.npy']);
    const index = fs.readFileSync(path.join(out, 'f.index.csv'), 'utf8').trimEnd().split('\n');
    assert.deepEqual(index, ['row,source,frame,time_s', ...good.map((p, i) => `${i},${p},,`)]);
    // The rows are those of the good images, in order: as a run on them alone gives.
    const reference = path.join(outFolder('skip-reference'), 'r.npy');
    assert.equal(
      cli(['extract', CHAIN, ...good, '--layer', 'head', '--pool', 'avg', '--out', reference, '--batch', '1', '--quiet']).status,
      0,
    );
    const [rows, expected] = [readNpy(file), readNpy(reference)];
    assert.deepEqual(rows.shape, [3, 8]);
    assert.deepEqual(expected.shape, [3, 8]);
    rows.data.forEach((v, i) => assert.ok(Math.abs(v - expected.data[i]) <= 1e-4 * Math.max(1, Math.abs(expected.data[i])), `value ${i}`));
  });

  it('--skip-unreadable with nothing readable: one line, exit 1, nothing left', () => {
    const out = outFolder('skip-all');
    const bad = ['c', 'd'].map((name) => path.join(mixed, `${name}.png`));
    const run = cli(['extract', CHAIN, ...bad, '--layer', 'head', '--out', path.join(out, 'f.npy'), '--quiet', '--skip-unreadable']);
    assert.equal(run.status, 1, run.stderr);
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 3, run.stderr);
    assert.match(lines[2], /^libtorch-features: nothing was written: all 2 inputs were unreadable$/);
    assert.deepEqual(list(out), []);
  });
});

describe('outputs', () => {
  it('an output that cannot be written: one line before the model loads, exit 1, nothing left', () => {
    // The model does not exist: had it been loaded first, the error would be MODEL_NOT_FOUND.
    const missingModel = path.join(dir, 'no-model.pt');
    const image = good[0];
    const out = outFolder('unwritable');
    fs.mkdirSync(path.join(out, 'folder.npy'));
    fs.mkdirSync(path.join(out, 'indexed.index.csv'));
    fs.writeFileSync(path.join(out, 'file'), 'a file');
    const planted = list(out);
    const cases: [string[], RegExp][] = [
      [['--out', path.join(out, 'indexed.npy')], /cannot write .*indexed\.index\.csv: it is a folder$/],
      [['--out', path.join(out, 'missing', 'f.npy')], /cannot write .*f\.npy: no such folder .*missing$/],
      [['--out', path.join(out, 'file', 'f.npy')], /cannot write .*f\.npy: .*file is not a folder$/],
      // An existing folder, or a name ending in /, is a folder of parts (parts.test.ts): the model
      // is hashed before the folder is touched, so the missing model is the error and nothing is made.
      [['--out', path.join(out, 'folder.npy')], /MODEL_NOT_FOUND: model file not found: /],
      [['--out', `${path.join(out, 'new')}/`], /MODEL_NOT_FOUND: model file not found: /],
    ];
    for (const [args, message] of cases) {
      expectOneLine(cli(['extract', missingModel, image, '--layer', 'head', ...args]), message);
      assert.deepEqual(list(out), planted);
    }
    assert.deepEqual(list(path.join(out, 'folder.npy')), []);
    const maps: [string[], RegExp][] = [
      [['--out', path.join(out, 'missing', 'maps.png')], /cannot write .*maps\.png: no such folder .*missing$/],
      [['--out', path.join(out, 'maps.png'), '--overlay', path.join(out, 'missing', 'o.png')], /cannot write .*o\.png: no such folder/],
      [['--out', path.join(out, 'maps.png'), '--overlay', path.join(out, 'folder.npy')], /cannot write .*folder\.npy: it is a folder$/],
      [['--out', path.join(out, 'maps.png'), '--overlay', path.join(out, 'maps.png')], /--overlay and --out name the same file/],
    ];
    for (const [args, message] of maps) {
      expectOneLine(cli(['maps', missingModel, image, '--layer', 'head', ...args]), message);
      assert.deepEqual(list(out), planted);
    }
  });

  it('maps --overlay into a missing folder writes no maps.png, with a real model too', () => {
    const out = outFolder('maps-missing');
    const run = cli([
      'maps',
      CHAIN,
      good[0],
      '--layer',
      'head',
      '--out',
      path.join(out, 'maps.png'),
      '--overlay',
      path.join(out, 'no', 'o.png'),
    ]);
    expectOneLine(run, /cannot write .*o\.png: no such folder/);
    assert.deepEqual(list(out), []);
  });

  it('maps with an unreadable image or a layer without maps: one line, nothing left', () => {
    const out = outFolder('maps-failing');
    const args = ['--out', path.join(out, 'maps.png'), '--overlay'];
    expectOneLine(cli(['maps', CHAIN, path.join(mixed, 'c.png'), '--layer', 'head', ...args]), /cannot read image .*c\.png/);
    expectOneLine(cli(['maps', RESNET18, good[0], '--layer', 'fc', ...args]), /layer fc gives shape \[1, 1000\], not feature maps/);
    assert.deepEqual(list(out), []);
  });

  it('an existing output is replaced only by a run that succeeds', () => {
    const out = outFolder('existing');
    const file = path.join(out, 'f.npy');
    fs.writeFileSync(file, 'old features');
    fs.writeFileSync(path.join(out, 'f.index.csv'), 'old index');
    expectOneLine(cli(['extract', CHAIN, mixed, '--layer', 'head', '--out', file, '--quiet']), /cannot read image/);
    assert.equal(fs.readFileSync(file, 'utf8'), 'old features');
    assert.equal(fs.readFileSync(path.join(out, 'f.index.csv'), 'utf8'), 'old index');
    assert.deepEqual(list(out), ['f.index.csv', 'f.npy']);
    const run = cli(['extract', CHAIN, ...good, '--layer', 'head', '--pool', 'avg', '--out', file, '--quiet']);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(readNpy(file).shape, [3, 8]);
    assert.deepEqual(list(out), ['f.index.csv', 'f.npy']);
  });

  it('symlinks planted at the temporary names (the old <pid> names) are not followed', () => {
    const out = outFolder('symlinks');
    const victims = outFolder('victims');
    const victim = path.join(victims, 'precious.txt');
    fs.writeFileSync(victim, 'precious');
    // The shell plants links named with its pid, then execs the CLI, which keeps that pid.
    const planted = ['.f.npy.$$.partial', '.f.index.csv.$$.partial', '.maps.png.$$.partial', '.maps.overlay.png.$$.partial'];
    const script = `${planted.map((name) => `ln -s "$VICTIM" "$OUT/${name}" &&`).join(' ')} exec "$NODE" "$@"`;
    const run = (args: string[]) =>
      spawnSync('/bin/sh', ['-c', script, 'sh', CLI, ...args], {
        encoding: 'utf8',
        timeout: TIMEOUT,
        env: { ...process.env, VICTIM: victim, OUT: out, NODE: process.execPath },
      });
    const samePid = spawnSync('/bin/sh', ['-c', 'echo $$; exec "$0" -e "console.log(process.pid)"', process.execPath], {
      encoding: 'utf8',
    });
    const [shellPid, nodePid] = samePid.stdout.trim().split('\n');
    assert.equal(shellPid, nodePid, 'exec keeps the pid');

    const links = () => list(out).filter((f) => fs.lstatSync(path.join(out, f)).isSymbolicLink());
    const file = path.join(out, 'f.npy');
    expectOneLine(run(['extract', CHAIN, mixed, '--layer', 'head', '--out', file, '--quiet']), /cannot read image/);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious');
    assert.equal(links().length, 4, 'the planted links are left alone');
    assert.deepEqual(
      list(out).filter((f) => !links().includes(f)),
      [],
    );
    const ok = run(['extract', CHAIN, ...good, '--layer', 'head', '--pool', 'avg', '--out', file, '--quiet']);
    assert.equal(ok.status, 0, ok.stderr);
    const maps = run(['maps', CHAIN, good[0], '--layer', 'head', '--out', path.join(out, 'maps.png'), '--overlay']);
    assert.equal(maps.status, 0, maps.stderr);
    // Two more processes planted their own links.
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious');
    assert.deepEqual(list(victims), ['precious.txt']);
    assert.equal(links().length, 12);
    assert.deepEqual(readNpy(file).shape, [3, 8]);
    assert.deepEqual(
      list(out).filter((f) => !links().includes(f)),
      ['f.index.csv', 'f.npy', 'maps.overlay.png', 'maps.png'],
    );
    for (const f of ['f.npy', 'f.index.csv', 'maps.png', 'maps.overlay.png']) assert.ok(fs.lstatSync(path.join(out, f)).isFile());
  });
});

describe('temporary files', () => {
  it('are created exclusively: one already there, a symlink say, is an error, never followed; nothing is left', () => {
    const out = outFolder('exclusive');
    const victim = path.join(outFolder('exclusive-victim'), 'precious.txt');
    fs.writeFileSync(victim, 'precious');
    // The random part of the names, made predictable for this test.
    const crypto = require('node:crypto') as { randomBytes: (n: number) => Buffer };
    const randomBytes = crypto.randomBytes;
    crypto.randomBytes = (n: number) => Buffer.alloc(n);
    try {
      const planted = `.f.index.csv.${process.pid}.000000000000.partial`;
      fs.symlinkSync(victim, path.join(out, planted));
      assert.throws(
        () => new Outputs([path.join(out, 'f.npy'), path.join(out, 'f.index.csv')]),
        (error: Error) => {
          assert.match(error.message, /^cannot write .*f\.index\.csv: EEXIST: /);
          return true;
        },
      );
      // The first temporary file, created before the second failed, is gone; the link is untouched.
      assert.deepEqual(list(out), [planted]);
      assert.equal(fs.readFileSync(victim, 'utf8'), 'precious');
    } finally {
      crypto.randomBytes = randomBytes;
    }
  });
});

describe('interrupts', () => {
  const start = (args: string[]) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output = { stderr: '' };
    child.stderr!.on('data', (chunk) => (output.stderr += chunk));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    return { child, output, closed };
  };

  it('a second Ctrl-C during a forward removes everything at once: exit 130, nothing left', { timeout: TIMEOUT }, async () => {
    const out = outFolder('twice');
    // Batches of 32 at 224x224 through ResNet-18: the forward in flight outlasts the two signals.
    const { child, output, closed } = start([
      'extract',
      RESNET18,
      many,
      '--layer',
      'layer4',
      '--batch',
      '32',
      '--out',
      path.join(out, 'f.npy'),
      '--device',
      'cpu',
    ]);
    await waitFor('the first progress line', () => /^extract: \d+\/64/m.test(output.stderr), child);
    child.kill('SIGINT');
    await waitFor('the first Ctrl-C to be taken', () => /Ctrl-C again to stop at once/.test(output.stderr), child);
    child.kill('SIGINT');
    const code = await closed;
    assert.equal(code, 130, output.stderr);
    assert.match(output.stderr, /^libtorch-features: interrupted again: nothing was written$/m);
    assert.doesNotMatch(output.stderr, /^\s+at /m);
    assert.deepEqual(list(out), []);
  });

  it('Ctrl-C during maps: exit 130, nothing left', { timeout: TIMEOUT }, async () => {
    const out = outFolder('maps-interrupted');
    const { child, output, closed } = start([
      'maps',
      RESNET18,
      good[0],
      '--layer',
      'layer4',
      '--out',
      path.join(out, 'maps.png'),
      '--overlay',
      '--device',
      'cpu',
    ]);
    await waitFor('a temporary file', () => list(out).some((f) => f.endsWith('.partial')), child);
    child.kill('SIGINT');
    const code = await closed;
    assert.equal(code, 130, output.stderr);
    assert.equal(output.stderr, 'libtorch-features: interrupted: nothing was written\n');
    assert.deepEqual(list(out), []);
  });
});

/** The command line end to end, on real files: NumPy reads what it writes; errors are one line. */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import sharp from 'sharp';

import { Extractor } from '../lib';
import { decodeImage, hasFfmpeg } from '../lib/cli/sources';
import { FIXTURES, RESNET18, makeTestVideo, manifest, readImage } from './helpers';

const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.js');
const PYTHON = process.env.FIXTURES_PYTHON || '/usr/bin/python3';

function cli(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...options.env } });
}

/** Reads an .npy file with NumPy and returns its shape and float32 values. */
function numpyLoad(file: string): { shape: number[]; data: Float32Array } {
  const code = `import numpy, sys, json\na = numpy.load(sys.argv[1])\nassert a.dtype == numpy.float32, a.dtype\nsys.stdout.write(json.dumps(list(a.shape)) + "\\n")\nsys.stdout.flush()\nsys.stdout.buffer.write(a.astype('<f4').tobytes())`;
  const run = spawnSync(PYTHON, ['-c', code, file], { maxBuffer: 1 << 28 });
  assert.equal(run.status, 0, run.stderr.toString());
  const newline = run.stdout.indexOf(10);
  const bytes = new Uint8Array(run.stdout.subarray(newline + 1));
  return {
    shape: JSON.parse(run.stdout.subarray(0, newline).toString()),
    data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4),
  };
}

function expectOneLineError(run: SpawnSyncReturns<string>, message: RegExp, code = 1): void {
  assert.equal(run.status, code, `exit ${run.status}: ${run.stderr}`);
  const lines = run.stderr.trim().split('\n');
  assert.match(lines[0], message);
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
}

let dir: string;
let photos: string[];
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-cli-'));
  fs.mkdirSync(path.join(dir, 'set', 'cats'), { recursive: true });
  // Three formats sharp reads, in a folder tree (rows come in sorted path order).
  const raw = manifest.preprocess.images.slice(0, 3).map(readImage);
  const toSharp = (image: (typeof raw)[number]) =>
    sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: image.channels } });
  photos = [path.join(dir, 'set', 'a.png'), path.join(dir, 'set', 'b.webp'), path.join(dir, 'set', 'cats', 'c.jpg')];
  await toSharp(raw[0]).png().toFile(photos[0]);
  await toSharp(raw[1]).webp({ lossless: true }).toFile(photos[1]);
  await toSharp(raw[2]).jpeg({ quality: 95 }).toFile(photos[2]);
  fs.writeFileSync(path.join(dir, 'broken.png'), 'not a png');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('libtorch-features layers', () => {
  it("lists the children like the article's listing", () => {
    const run = cli(['layers', RESNET18]);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(
      run.stdout.trim().split('\n'),
      manifest.resnet18.layers.map((l, i) => `${i} ${l.name} ${l.type}`),
    );
  });

  it('--nested lists module calls and the other nodes torchvision lists, with their kind; --summary prints the torchsummary table', () => {
    const nested = cli(['layers', RESNET18, '--nested']);
    assert.match(nested.stdout, /^ 0 x x \(input\)$/m);
    assert.match(nested.stdout, /^12 layer1\.0\.add add \(function\)$/m);
    assert.match(nested.stdout, /^13 layer1\.0\.relu_1 ReLU$/m);
    const summary = cli(['layers', RESNET18, '--summary', '--input', '3,224,224', '--layer', 'layer4']);
    assert.equal(summary.status, 0, summary.stderr);
    assert.match(summary.stdout, /Total params: 11,176,512/);
    assert.match(summary.stdout, /Params size \(MB\): 42\.64/);
  });
});

describe('libtorch-features extract', () => {
  it('writes a real .npy (NumPy reads it) equal to the API, and an index in row order', async () => {
    const out = path.join(dir, 'features.npy');
    const run = cli([
      'extract',
      RESNET18,
      path.join(dir, 'set'),
      '--layer',
      'layer4',
      '--pool',
      'avg',
      '--out',
      out,
      '--batch',
      '2',
      '--device',
      'cpu',
    ]);
    assert.equal(run.status, 0, run.stderr);
    const npy = numpyLoad(out);
    assert.deepEqual(npy.shape, [3, 512]);
    // The command line runs the optimised graph (--no-optimize for the model as it is), in
    // batches of 2 here: the same batches through the API give the same bits (Winograd's kernels
    // depend on the batch size, so other batches would differ by float rounding).
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu', pool: 'avg', optimize: true });
    const images = await Promise.all(photos.map(decodeImage));
    const first = await ex.extract(images.slice(0, 2));
    const second = await ex.extract(images.slice(2));
    assert.deepEqual(npy.data, Float32Array.from([...first.data, ...second.data]));
    const index = fs.readFileSync(path.join(dir, 'features.index.csv'), 'utf8').trim().split('\n');
    assert.deepEqual(index, ['row,source,frame,time_s', ...photos.map((p, i) => `${i},${p},,`)]);
    assert.match(run.stderr, /wrote 3 rows/);
  });

  it('--no-winograd runs the direct algorithm: the API with winograd: false, same batch, same bits', async () => {
    const out = path.join(dir, 'direct.npy');
    const run = cli([
      'extract',
      RESNET18,
      ...photos,
      '--layer',
      'layer4',
      '--pool',
      'avg',
      '--out',
      out,
      '--device',
      'cpu',
      '--no-winograd',
    ]);
    assert.equal(run.status, 0, run.stderr);
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu', pool: 'avg', optimize: true, winograd: false });
    const expected = await ex.extract(await Promise.all(photos.map(decodeImage)));
    assert.deepEqual(numpyLoad(out).data, expected.data);
  });

  it('several --layer write one file each, unpooled shapes kept', () => {
    const out = path.join(dir, 'multi.npy');
    const run = cli([
      'extract',
      RESNET18,
      photos[0],
      photos[2],
      '--layer',
      'layer2',
      '--layer',
      'layer4',
      '--out',
      out,
      '--quiet',
      '--device',
      'cpu',
    ]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '', '--quiet prints nothing');
    assert.deepEqual(numpyLoad(path.join(dir, 'multi.layer2.npy')).shape, [2, 128, 28, 28]);
    assert.deepEqual(numpyLoad(path.join(dir, 'multi.layer4.npy')).shape, [2, 512, 7, 7]);
    assert.equal(fs.readFileSync(path.join(dir, 'multi.index.csv'), 'utf8').trim().split('\n').length, 3);
  });

  it(
    'videos: frames sampled at --fps, clip and time of each row in the index',
    { skip: hasFfmpeg() ? false : 'ffmpeg is not on PATH' },
    () => {
      const video = path.join(dir, 'clip.mp4');
      makeTestVideo(video, 2);
      const out = path.join(dir, 'video.npy');
      const run = cli([
        'extract',
        RESNET18,
        video,
        photos[0],
        '--layer',
        'layer1',
        '--pool',
        'max',
        '--fps',
        '2',
        '--out',
        out,
        '--device',
        'cpu',
      ]);
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(numpyLoad(out).shape, [5, 64]);
      const index = fs.readFileSync(path.join(dir, 'video.index.csv'), 'utf8').trim().split('\n').slice(1);
      assert.deepEqual(
        index.slice(0, 4),
        [0, 1, 2, 3].map((i) => `${i},${video},${i},${(i / 2).toFixed(3)}`),
      );
      assert.equal(index[4], `4,${photos[0]},,`);
    },
  );

  it('without ffmpeg on PATH, a video is one clear line', () => {
    // A PATH that holds node alone.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-bin-'));
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    const video = path.join(dir, 'silent.mp4');
    fs.writeFileSync(video, '');
    const run = cli(['extract', RESNET18, video, '--layer', 'layer4', '--out', path.join(dir, 'x.npy')], { env: { PATH: bin } });
    fs.rmSync(bin, { recursive: true });
    expectOneLineError(run, /^libtorch-features: videos need ffmpeg and ffprobe on PATH \(Debian: apt-get install ffmpeg\)/);
  });

  it('progress: plain lines when not a terminal, a bar with rate and ETA on one', () => {
    const plain = cli(['extract', RESNET18, photos[0], '--layer', 'conv1', '--out', path.join(dir, 'p.npy'), '--device', 'cpu']);
    assert.match(plain.stderr, /^extract: 1\/1 items \(100%\), [\d.]+ items\/s, ETA \d+s$/m);
    const command = [
      process.execPath,
      CLI,
      'extract',
      RESNET18,
      photos[0],
      '--layer',
      'conv1',
      '--out',
      path.join(dir, 't.npy'),
      '--device',
      'cpu',
    ]
      .map((a) => `'${a}'`)
      .join(' ');
    const tty = spawnSync('script', ['-qfec', command, '/dev/null'], { encoding: 'utf8' });
    assert.equal(tty.status, 0, tty.stdout);
    assert.match(tty.stdout, /extract [█░]+ 100% \| 1\/1 \| [\d.]+ items\/s \| ETA/);
  });

  it('Ctrl-C stops cleanly: exit 130, nothing left behind', async () => {
    const many = path.join(dir, 'many');
    fs.mkdirSync(many);
    for (let i = 0; i < 60; i++) fs.copyFileSync(photos[0], path.join(many, `${String(i).padStart(3, '0')}.png`));
    const out = path.join(dir, 'interrupted.npy');
    const child = spawn(
      process.execPath,
      [CLI, 'extract', RESNET18, many, '--layer', 'layer4', '--batch', '1', '--out', out, '--device', 'cpu'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    // Interrupt once rows are being written.
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (fs.readdirSync(dir).some((f) => f.includes('interrupted') && f.endsWith('.partial'))) {
          clearInterval(timer);
          setTimeout(() => {
            child.kill('SIGINT');
            resolve();
          }, 300);
        }
      }, 20);
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted: nothing was written/);
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.includes('interrupted')),
      [],
    );
  });

  it('bad arguments and inputs: one line, non-zero exit, nothing written', () => {
    const out = path.join(dir, 'bad.npy');
    const cases: [string[], RegExp, number][] = [
      [['extract', RESNET18, photos[0], '--out', out], /required option '--layer <name>'/, 2],
      [['extract', RESNET18, photos[0], '--layer', 'layer4', '--out', out, '--batch', '0'], /--batch.*positive integer/, 2],
      [['extract', RESNET18, photos[0], '--layer', 'layer4', '--out', out, '--pool', 'median'], /--pool.*Allowed choices are avg, max/, 2],
      [['extract', RESNET18, photos[0], '--layer', 'layer9', '--out', out], /LAYER_NOT_FOUND: layer 'layer9'.*conv1, bn1/, 1],
      [
        ['extract', RESNET18, path.join(dir, 'missing.png'), '--layer', 'layer4', '--out', out],
        /no such file or folder: .*missing\.png/,
        1,
      ],
      [['extract', RESNET18, path.join(dir, 'broken.png'), '--layer', 'layer4', '--out', out], /cannot read image .*broken\.png/, 1],
      [['extract', path.join(dir, 'nope.pt'), photos[0], '--layer', 'layer4', '--out', out], /MODEL_NOT_FOUND/, 1],
      [
        ['maps', RESNET18, photos[0], '--layer', 'fc', '--out', path.join(dir, 'fc.png')],
        /layer fc gives shape \[1, 1000\], not feature maps/,
        1,
      ],
      [['frobnicate'], /unknown command 'frobnicate'/, 2],
      // A parameter (issue 14's nodes) has no row per input: refused, not written as rows.
      [
        [
          'extract',
          path.join(FIXTURES, 'zoo', 'convnext_tiny.pt'),
          photos[0],
          '--layer',
          'features.1.0.features_1_0_layer_scale',
          '--out',
          out,
        ],
        /layer features\.1\.0\.features_1_0_layer_scale gives \[96, 1, 1\] for 1 input\(s\), not a row per input/,
        1,
      ],
    ];
    for (const [args, message, code] of cases) expectOneLineError(cli(args), message, code);
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.startsWith('bad') || f.includes('.partial')),
      [],
    );
  });

  it('--help on every command', () => {
    for (const command of [[], ['layers'], ['extract'], ['maps'], ['rebuild']]) {
      const run = cli([...command, '--help']);
      assert.equal(run.status, 0, `${command.join(' ')}: ${run.stderr}`);
      assert.match(run.stdout, /^Usage: libtorch-features/);
    }
  });
});

describe('libtorch-features maps', () => {
  it('a grid of 512 tiles of 7x7 (23 columns), each scaled to its own range, and a heat-map overlay', async () => {
    const out = path.join(dir, 'maps.png');
    const run = cli(['maps', RESNET18, photos[0], '--layer', 'layer4', '--out', out, '--overlay', '--device', 'cpu']);
    assert.equal(run.status, 0, run.stderr);
    const tile = 7 * 5 + 2; // 7x7 maps drawn 5x, with 2-pixel gaps
    const grid = await sharp(out).metadata();
    assert.deepEqual([grid.width, grid.height, grid.format], [23 * tile + 2, 23 * tile + 2, 'png']);
    const stats = await sharp(out).stats();
    assert.ok(
      stats.channels.every((c) => c.stdev > 10),
      'the picture is not blank',
    );
    const overlay = await sharp(path.join(dir, 'maps.overlay.png')).metadata();
    assert.deepEqual([overlay.width, overlay.height], [224, 224]);
  });
});

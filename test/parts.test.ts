/**
 * extract --out DIR/ (a folder of parts), --resume, --shard K/N and merge, end to end in child
 * processes: merge gives the bytes a single extract writes; a crash leaves no part that looks
 * complete; hostile folders, manifests and parts are one-line errors with a code.
 */
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { PARTS_ERROR_CODES } from '../lib/cli/errors';
import { hasFfmpeg } from '../lib/cli/sources';
import { CHAIN, RESNET18, makeTestVideo, readNpy } from './helpers';
import { cli, cliChild, exited, expectOneLine, list, makePhotos, sameBytes, waitFor } from './parts-helpers';

let dir: string;
let photos: string; // 10 photos
let photoFiles: string[];
let big: string; // 6 large photos: slow enough to stop a run mid-part
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-parts-'));
  photos = path.join(dir, 'photos');
  photoFiles = await makePhotos(photos, 10);
  big = path.join(dir, 'big');
  await makePhotos(big, 6, 900);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const fresh = (name: string) => path.join(dir, name);
const CHAIN_ARGS = ['--layer', 'head', '--pool', 'avg', '--batch', '2', '--quiet'];

/** A single extract of the photos, the reference every merge must equal; `args` as for the folder. */
function single(name: string, model: string, args: string[]): string {
  const out = path.join(fresh(name), 'single.npy');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const run = cli(['extract', model, photos, ...args, '--out', out]);
  assert.equal(run.status, 0, run.stderr);
  return out;
}

function merge(folder: string, out: string): void {
  const run = cli(['merge', folder, '--out', out, '--quiet']);
  assert.equal(run.status, 0, run.stderr);
}

describe('extract --out DIR/', () => {
  it('writes parts of --part-size inputs and a manifest; merge gives the bytes of a single extract (ResNet-18, optimised)', () => {
    const folder = fresh('resnet');
    const args = ['--layer', 'layer4', '--pool', 'avg', '--batch', '2', '--quiet'];
    const run = cli(['extract', RESNET18, photos, ...args, '--out', `${folder}/`, '--part-size', '4']);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(list(folder), [
      'manifest.json',
      ...['00000', '00001', '00002'].flatMap((n) => [`part-${n}.index.csv`, `part-${n}.npy`]),
    ]);
    const manifest = JSON.parse(fs.readFileSync(path.join(folder, 'manifest.json'), 'utf8'));
    assert.equal(manifest.model.path, RESNET18);
    assert.equal(manifest.model.sha256, createHash('sha256').update(fs.readFileSync(RESNET18)).digest('hex'));
    assert.deepEqual(manifest.layers, ['layer4']);
    assert.deepEqual(manifest.options, {
      pool: 'avg',
      normalize: null,
      dtype: 'float32',
      optimize: true,
      winograd: true,
      batch: 2,
      fps: 1,
      skipUnreadable: false,
    });
    assert.deepEqual(manifest.inputs, photoFiles);
    assert.deepEqual(manifest.parts, [
      { name: 'part-00000', first: 0, count: 4 },
      { name: 'part-00001', first: 4, count: 4 },
      { name: 'part-00002', first: 8, count: 2 },
    ]);
    // Each part is itself what extract writes for its inputs (rows numbered from 0).
    assert.equal(
      fs.readFileSync(path.join(folder, 'part-00002.index.csv'), 'utf8'),
      `row,source,frame,time_s\n0,${photoFiles[8]},,\n1,${photoFiles[9]},,\n`,
    );
    const reference = single('resnet-single', RESNET18, args);
    const merged = path.join(fresh('resnet-single'), 'merged.npy');
    merge(folder, merged);
    sameBytes(merged, reference);
    sameBytes(merged.replace(/npy$/, 'index.csv'), reference.replace(/npy$/, 'index.csv'));
  });

  it('several layers: part-00000.<layer>.npy each and one index; merge gives out.<layer>.npy as extract does', () => {
    const folder = fresh('layers');
    const args = ['--layer', 'head', '--layer', 'tail', '--batch', '2', '--quiet'];
    assert.equal(cli(['extract', CHAIN, photos, ...args, '--out', `${folder}/`, '--part-size', '6']).status, 0);
    assert.deepEqual(list(folder), [
      'manifest.json',
      ...['00000', '00001'].flatMap((n) => [`part-${n}.head.npy`, `part-${n}.index.csv`, `part-${n}.tail.npy`]),
    ]);
    const reference = single('layers-single', CHAIN, args);
    const merged = path.join(fresh('layers-single'), 'merged.npy');
    merge(folder, merged);
    for (const layer of ['head', 'tail']) sameBytes(merged.replace(/npy$/, `${layer}.npy`), reference.replace(/npy$/, `${layer}.npy`));
    sameBytes(merged.replace(/npy$/, 'index.csv'), reference.replace(/npy$/, 'index.csv'));
  });

  it('an existing folder (no trailing slash) is a folder of parts too; relative inputs stay as listed, read from where the folder was made', () => {
    const folder = fresh('relative');
    fs.mkdirSync(folder);
    const run = cli(['extract', CHAIN, 'photos', ...CHAIN_ARGS, '--out', 'relative', '--part-size', '3'], { cwd: dir });
    assert.equal(run.status, 0, run.stderr);
    const manifest = JSON.parse(fs.readFileSync(path.join(folder, 'manifest.json'), 'utf8'));
    assert.equal(manifest.base, dir);
    assert.equal(manifest.inputs[0], path.join('photos', '00.png'));
    // Merged from elsewhere, the index still names the inputs as listed.
    merge(folder, path.join(folder, '..', 'relative.npy'));
    assert.match(fs.readFileSync(path.join(dir, 'relative.index.csv'), 'utf8'), /^row,source,frame,time_s\n0,photos\/00\.png,,\n/);
  });

  it('--shard K/N: N processes at once each write their slice (round-robin), one manifest; merge equals a single extract', async () => {
    const folder = fresh('shards');
    const shards = [0, 1, 2].map((k) =>
      cliChild([
        'extract',
        CHAIN,
        photos,
        ...CHAIN_ARGS.filter((a) => a !== '--quiet'),
        '--out',
        `${folder}/`,
        '--part-size',
        '2',
        '--shard',
        `${k}/3`,
      ]),
    );
    const codes = await Promise.all(shards.map(exited));
    assert.deepEqual(codes, [0, 0, 0], shards.map((s) => s.stderrText()).join('\n'));
    // 5 parts: shard 0 takes parts 0 and 3, shard 1 parts 1 and 4, shard 2 part 2.
    assert.match(shards[0].stderrText(), /shard 0\/3: wrote 2 parts \(4 rows\) to .*; 2 of 2 complete \(5 parts in all\)/);
    assert.match(shards[1].stderrText(), /shard 1\/3: wrote 2 parts \(4 rows\)/);
    assert.match(shards[2].stderrText(), /shard 2\/3: wrote 1 part \(2 rows\)/);
    const reference = single('shards-single', CHAIN, CHAIN_ARGS);
    const merged = path.join(fresh('shards-single'), 'merged.npy');
    merge(folder, merged);
    sameBytes(merged, reference);
    sameBytes(merged.replace(/npy$/, 'index.csv'), reference.replace(/npy$/, 'index.csv'));
  });
  it(
    'videos: a part holds each clip whole (its frames may not fill batches); merge gives the same index and rows within float rounding',
    { skip: hasFfmpeg() ? false : 'ffmpeg is not on PATH' },
    () => {
      const clips = fresh('clips');
      fs.mkdirSync(clips);
      for (const [name, seconds] of [
        ['a.mp4', 2],
        ['b.mp4', 1],
      ] as const) {
        makeTestVideo(path.join(clips, name), seconds);
      }
      fs.copyFileSync(photoFiles[0], path.join(clips, 'c.png'));
      const args = ['--layer', 'head', '--pool', 'avg', '--batch', '3', '--fps', '3', '--quiet'];
      const folder = fresh('video-parts');
      assert.equal(cli(['extract', CHAIN, clips, ...args, '--out', `${folder}/`, '--part-size', '1']).status, 0);
      // 6 frames of a.mp4, 3 of b.mp4, then the photo: a part each.
      assert.equal(
        fs.readFileSync(path.join(folder, 'part-00001.index.csv'), 'utf8'),
        `row,source,frame,time_s\n${[0, 1, 2].map((i) => `${i},${path.join(clips, 'b.mp4')},${i},${(i / 3).toFixed(3)}`).join('\n')}\n`,
      );
      const reference = path.join(fresh('video-single'), 'single.npy');
      fs.mkdirSync(path.dirname(reference));
      assert.equal(cli(['extract', CHAIN, clips, ...args, '--out', reference]).status, 0);
      const merged = fresh('video-merged.npy');
      merge(folder, merged);
      sameBytes(fresh('video-merged.index.csv'), reference.replace(/npy$/, 'index.csv'));
      const [a, b] = [readNpy(merged), readNpy(reference)];
      assert.deepEqual(a.shape, [10, 8]);
      assert.deepEqual(a.shape, b.shape);
      a.data.forEach((v, i) =>
        assert.ok(Math.abs(v - b.data[i]) <= 1e-5 * Math.max(1, Math.abs(b.data[i])), `value ${i}: ${v} vs ${b.data[i]}`),
      );
    },
  );
});

describe('--resume and crashes', () => {
  it('a process killed (SIGKILL) mid-part leaves only complete parts and hidden temporaries; merge names what is missing; --resume finishes it', async () => {
    const folder = fresh('killed');
    // Large photos, one at a time: the kill lands while the second part is being written.
    const args = ['--layer', 'layer4', '--pool', 'avg', '--batch', '1', '--quiet'];
    const child = cliChild(['extract', RESNET18, big, ...args, '--out', `${folder}/`, '--part-size', '3']);
    const partial = () =>
      fs.existsSync(folder) &&
      list(folder).some((f) => /^\.part-00001\.npy\..*\.partial$/.test(f) && fs.statSync(path.join(folder, f)).size > 256);
    await waitFor('the second part to hold a row', partial);
    child.kill('SIGKILL');
    assert.equal(await exited(child), 'SIGKILL');
    const left = list(folder);
    assert.deepEqual(
      left.filter((f) => !f.startsWith('.')),
      ['manifest.json', 'part-00000.index.csv', 'part-00000.npy'],
    );
    assert.ok(
      left.some((f) => f.startsWith('.part-00001.') && f.endsWith('.partial')),
      'the temporaries are hidden',
    );
    expectOneLine(
      cli(['merge', folder, '--out', fresh('killed.npy')]),
      /^libtorch-features: PART_MISSING: part-00001 missing in .*killed \(1 of 2 parts\): finish the extraction first/,
    );
    assert.ok(!fs.existsSync(fresh('killed.npy')));
    const before = fs.statSync(path.join(folder, 'part-00000.npy')).mtimeMs;
    const resumed = cli(['extract', RESNET18, big, ...args.filter((a) => a !== '--quiet'), '--out', `${folder}/`, '--resume']);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /wrote 1 part \(3 rows\) to .*; 2 of 2 complete/);
    assert.equal(fs.statSync(path.join(folder, 'part-00000.npy')).mtimeMs, before, 'the complete part was kept');
    const reference = path.join(fresh('killed-ref'), 'single.npy');
    fs.mkdirSync(path.dirname(reference));
    assert.equal(cli(['extract', RESNET18, big, ...args, '--out', reference]).status, 0);
    merge(folder, fresh('killed-merged.npy'));
    sameBytes(fresh('killed-merged.npy'), reference);
  });

  it('Ctrl-C stops after the batch in flight: the part in flight is discarded, exit 130, one line; --resume continues', async () => {
    const folder = fresh('interrupted');
    const args = ['--layer', 'layer4', '--pool', 'avg', '--batch', '1', '--quiet'];
    const child = cliChild(['extract', RESNET18, big, ...args, '--out', `${folder}/`, '--part-size', '2']);
    await waitFor('a complete part', () => fs.existsSync(path.join(folder, 'part-00000.index.csv')));
    child.kill('SIGINT');
    assert.equal(await exited(child), 130);
    const lines = child.stderrText().trimEnd().split('\n');
    assert.deepEqual(lines.slice(0, -1), ['libtorch-features: stopping after the batch in flight (Ctrl-C again to stop at once)']);
    assert.match(
      lines[lines.length - 1],
      /^libtorch-features: interrupted: [12] of 3 parts complete in .*interrupted\/, the part in flight discarded \(--resume continues\)$/,
    );
    assert.deepEqual(
      list(folder).filter((f) => f.startsWith('.')),
      [],
      'no temporaries left',
    );
    const resumed = cli(['extract', RESNET18, big, ...args, '--out', `${folder}/`, '--resume']);
    assert.equal(resumed.status, 0, resumed.stderr);
    merge(folder, fresh('interrupted.npy'));
  });

  it('--resume extracts again a part whose files are incomplete or damaged, with a warning, and keeps the others', () => {
    const folder = fresh('damaged');
    assert.equal(cli(['extract', CHAIN, photos, ...CHAIN_ARGS, '--out', `${folder}/`, '--part-size', '4']).status, 0);
    const reference = path.join(fresh('damaged-ref'), 'r.npy');
    merge(folder, (fs.mkdirSync(path.dirname(reference)), reference));
    fs.rmSync(path.join(folder, 'part-00000.index.csv')); // killed between the renames
    const npy = path.join(folder, 'part-00002.npy');
    fs.truncateSync(npy, fs.statSync(npy).size - 4);
    const kept = fs.statSync(path.join(folder, 'part-00001.npy')).ino;
    const run = cli(['extract', CHAIN, photos, ...CHAIN_ARGS, '--out', `${folder}/`, '--resume']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(
      run.stderr,
      /^libtorch-features: part-00002 is damaged \(part-00002\.npy: it holds 60 bytes of data where its shape \[2, 8\] needs 64\): extracting it again$/m,
    );
    assert.equal(fs.statSync(path.join(folder, 'part-00001.npy')).ino, kept);
    merge(folder, fresh('damaged.npy'));
    sameBytes(fresh('damaged.npy'), reference);
  });
});

describe('hostile folders, manifests and parts', () => {
  const made = () => {
    const folder = fs.mkdtempSync(path.join(dir, 'made-'));
    assert.equal(cli(['extract', CHAIN, photos, ...CHAIN_ARGS, '--out', `${folder}/`, '--part-size', '4']).status, 0);
    return folder;
  };

  it('bad --shard, --part-size, --layer and flags without a folder are usage errors (exit 2) before anything runs', () => {
    const out = `${fresh('usage')}/`;
    const cases: [string[], RegExp][] = [
      [
        ['--shard', '3/2'],
        /'--shard <K\/N>' argument '3\/2' is invalid\. K must be less than N: shards are counted from 0 \(0\/2 to 1\/2\)/,
      ],
      [['--shard', '2/2'], /K must be less than N/],
      [['--shard', '0/0'], /N must be 1 to 1,000,000/],
      [['--shard', '-1/2'], /expected K\/N, such as 0\/4/],
      [['--shard', '1/2/3'], /expected K\/N/],
      [['--part-size', '0'], /'--part-size <n>' argument '0' is invalid\. expected 1 to 1,000,000 inputs per part/],
      [['--part-size', '1e12'], /argument '1e12' is invalid\. expected 1 to 1,000,000/],
      [['--part-size', '2.5'], /expected 1 to 1,000,000/],
      [['--part-size', ''], /expected 1 to 1,000,000/],
    ];
    for (const [args, message] of cases)
      expectOneLine(cli(['extract', CHAIN, photos, '--layer', 'head', '--out', out, ...args]), message, 2);
    expectOneLine(
      cli(['extract', CHAIN, photos, '--layer', '../x', '--out', out]),
      /--layer "\.\.\/x": a folder of parts needs layer names made of letters, digits, _ and \./,
      2,
    );
    for (const flag of [['--resume'], ['--shard', '0/2'], ['--part-size', '4']]) {
      expectOneLine(
        cli(['extract', CHAIN, photos, '--layer', 'head', '--out', fresh('f.npy'), ...flag]),
        /--resume, --shard and --part-size need --out DIR\/ \(a folder of parts\)/,
        2,
      );
    }
    assert.ok(!fs.existsSync(out), 'nothing created');
  });

  it('a folder made with another model, layer or options, or holding other files, or this extraction without --resume, is refused with a code', () => {
    const folder = made();
    const before = list(folder);
    const again = (model: string, args: string[]) => cli(['extract', model, photos, ...args, '--out', `${folder}/`, '--resume']);
    expectOneLine(
      again(RESNET18, CHAIN_ARGS),
      /^libtorch-features: MANIFEST_MISMATCH: .* holds an extraction made with another model \(sha256 [0-9a-f]{12}…, .*chain\.pt; this one is [0-9a-f]{12}…\); use another folder$/,
    );
    expectOneLine(
      again(CHAIN, ['--layer', 'tail', '--pool', 'avg', '--batch', '2']),
      /MANIFEST_MISMATCH: .* made with layer head \(not tail\)/,
    );
    expectOneLine(
      again(CHAIN, ['--layer', 'head', '--batch', '2']),
      /MANIFEST_MISMATCH: .* made with other options \(pool avg there, none now\)/,
    );
    expectOneLine(again(CHAIN, [...CHAIN_ARGS, '--part-size', '5']), /MANIFEST_MISMATCH: .* made with --part-size 4 \(not 5\)/);
    expectOneLine(
      cli(['extract', CHAIN, photoFiles[0], ...CHAIN_ARGS, '--out', `${folder}/`, '--resume']),
      /MANIFEST_MISMATCH: .* made with other inputs \(10 there, 1 now; input 1 is .*01\.png there, absent now\)/,
    );
    expectOneLine(
      cli(['extract', CHAIN, photos, ...CHAIN_ARGS, '--out', `${folder}/`]),
      /^libtorch-features: FOLDER_IN_USE: .* already holds this extraction: add --resume to continue it, or use another folder$/,
    );
    assert.deepEqual(list(folder), before, 'nothing changed');
    const other = fresh('other-files');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'notes.txt'), 'mine');
    expectOneLine(
      cli(['extract', CHAIN, photos, ...CHAIN_ARGS, '--out', other]),
      /FOLDER_IN_USE: .*other-files holds files \(notes\.txt, \.\.\.\) but no manifest\.json: give an empty or new folder/,
    );
    assert.deepEqual(list(other), ['notes.txt']);
    fs.writeFileSync(fresh('a-file'), 'x');
    expectOneLine(
      cli(['extract', CHAIN, photos, ...CHAIN_ARGS, '--out', `${fresh('a-file')}/`]),
      /cannot write parts to .*a-file\/: it is a file, not a folder$/,
    );
    expectOneLine(
      cli(['extract', CHAIN, photos, ...CHAIN_ARGS, '--out', `${fresh('no/such')}/`]),
      /cannot write parts to .*no\/such\/: no such folder .*no$/,
    );
  });

  it('a missing model or layer leaves no folder behind', () => {
    expectOneLine(
      cli(['extract', fresh('none.pt'), photos, ...CHAIN_ARGS, '--out', `${fresh('no-model')}/`]),
      /MODEL_NOT_FOUND: model file not found: /,
    );
    expectOneLine(cli(['extract', CHAIN, photos, '--layer', 'nope', '--quiet', '--out', `${fresh('no-layer')}/`]), /LAYER_NOT_FOUND: /);
    assert.ok(!fs.existsSync(fresh('no-model')) && !fs.existsSync(fresh('no-layer')));
  });

  it('a manifest edited by hand is MANIFEST_INVALID for --resume and merge, saying what is wrong', () => {
    const folder = made();
    const file = path.join(folder, 'manifest.json');
    const original = JSON.parse(fs.readFileSync(file, 'utf8'));
    const edits: [string, (m: Record<string, unknown> & typeof original) => unknown, RegExp][] = [
      ['truncated', () => null, /Unexpected end of JSON|JSON/],
      ['another format', (m) => ({ ...m, format: 'x' }), /format "x"/],
      ['a later version', (m) => ({ ...m, version: 2 }), /version 2: this libtorch-features reads version 1/],
      ['a sha256 that is not one', (m) => ({ ...m, model: { ...m.model, sha256: 'abc' } }), /model\.sha256/],
      ['a layer that leaves the folder', (m) => ({ ...m, layers: ['../../etc'] }), /layer "\.\.\/\.\.\/etc"/],
      ['parts that do not cover the inputs', (m) => ({ ...m, parts: m.parts.slice(1) }), /parts: not 3 parts of 4 inputs/],
      ['a part size of 1e12', (m) => ({ ...m, partSize: 1e12 }), /partSize/],
      ['an input that is not media', (m) => ({ ...m, inputs: [...m.inputs.slice(0, 9), '/etc/passwd'] }), /input 9/],
      ['an option of the wrong type', (m) => ({ ...m, options: { ...m.options, batch: '2' } }), /options\.batch/],
      ['an extra key', (m) => ({ ...m, extra: 1 }), /expected an object with format, version/],
    ];
    for (const [what, edit, why] of edits) {
      const edited = edit(structuredClone(original));
      fs.writeFileSync(file, edited === null ? JSON.stringify(original).slice(0, 50) : JSON.stringify(edited));
      for (const run of [
        cli(['extract', CHAIN, photos, ...CHAIN_ARGS, '--out', `${folder}/`, '--resume']),
        cli(['merge', folder, '--out', fresh('edited.npy')]),
      ]) {
        expectOneLine(run, /^libtorch-features: MANIFEST_INVALID: .*manifest\.json is not a manifest libtorch-features wrote \(/);
        assert.match(run.stderr, why, what);
      }
    }
    assert.ok(!fs.existsSync(fresh('edited.npy')));
  });

  it('merge: a truncated, edited or swapped part is PART_DAMAGED naming it; a missing one PART_MISSING; nothing is written', () => {
    const folder = made();
    const out = fresh('merged-bad.npy');
    const damage: [string, () => void, RegExp][] = [
      [
        'truncated',
        () => fs.truncateSync(path.join(folder, 'part-00001.npy'), 300),
        /part-00001 in .* is damaged: part-00001\.npy: it holds 44 bytes of data where its shape \[4, 8\] needs 128; delete its files and extract it again/,
      ],
      [
        'not an .npy',
        () => fs.writeFileSync(path.join(folder, 'part-00001.npy'), 'hello'),
        /part-00001\.npy: not an \.npy file written by libtorch-features/,
      ],
      [
        'rows out of order',
        () => {
          const file = path.join(folder, 'part-00001.index.csv');
          const lines = fs.readFileSync(file, 'utf8').split('\n');
          [lines[1], lines[2]] = [lines[2].replace(/^1,/, '0,'), lines[1].replace(/^0,/, '1,')];
          fs.writeFileSync(file, lines.join('\n'));
        },
        /part-00001\.index\.csv: row 0 \(.*05\.png\) is not the next input of this part|input .*04\.png has no row/,
      ],
      [
        'a part swapped for another',
        () => fs.copyFileSync(path.join(folder, 'part-00000.index.csv'), path.join(folder, 'part-00001.index.csv')),
        /part-00001\.index\.csv: /,
      ],
      [
        'fewer index rows',
        () => fs.writeFileSync(path.join(folder, 'part-00001.index.csv'), 'row,source,frame,time_s\n'),
        /part-00001\.index\.csv: 0 rows where the \.npy holds 4/,
      ],
    ];
    const saved = ['part-00001.npy', 'part-00001.index.csv'].map((f) => [f, fs.readFileSync(path.join(folder, f))] as const);
    for (const [what, act, message] of damage) {
      act();
      const run = cli(['merge', folder, '--out', out]);
      expectOneLine(run, /^libtorch-features: PART_DAMAGED: /);
      assert.match(run.stderr, message, what);
      for (const [f, bytes] of saved) fs.writeFileSync(path.join(folder, f), bytes);
    }
    fs.rmSync(path.join(folder, 'part-00002.npy'));
    expectOneLine(
      cli(['merge', folder, '--out', out]),
      /PART_MISSING: part-00002 missing in .* \(1 of 3 parts; part-00002: part-00002\.npy is missing\): finish the extraction first \(extract --resume, or queue work\)$/,
    );
    expectOneLine(
      cli(['merge', photos, '--out', out]),
      /MANIFEST_INVALID: .*photos holds no manifest\.json: not a folder that extract --out DIR\/ or the queue wrote/,
    );
    expectOneLine(cli(['merge', fresh('nowhere'), '--out', out]), /no such folder: /);
    assert.ok(!fs.existsSync(out) && !fs.existsSync(out.replace(/npy$/, 'index.csv')));
  });
});

describe('error codes', () => {
  it("every PartsError code is in the README's list and in docs/troubleshooting.md's table, and nothing else is", () => {
    const root = path.join(__dirname, '..', '..');
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const listed = /Codes of these failures \(on `PartsError`, a `CliError`\): ([^.]*)\./.exec(readme)![1];
    assert.deepEqual(
      [...listed.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]),
      [...PARTS_ERROR_CODES],
    );
    const docs = fs.readFileSync(path.join(root, 'docs', 'troubleshooting.md'), 'utf8');
    const table = docs.slice(docs.indexOf("## The command line's folder of parts"), docs.indexOf('## Other questions'));
    assert.deepEqual(
      [...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]),
      [...PARTS_ERROR_CODES],
    );
  });
});

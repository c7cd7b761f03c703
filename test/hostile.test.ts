/**
 * Hostile and unlucky callers (issue 11): each case runs in a child process with a time limit, so
 * that a crash is a failed case, not a dead test runner. Each child prints one JSON line.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { CHAIN, RESNET18, fixture, manifest } from './helpers';

const LIB = path.join(__dirname, '..', 'lib');

/** Runs `body` (an async function body with `Extractor` and `report` in scope) in a fresh Node. */
function inChild(body: string, options: { cwd?: string } = {}): Record<string, unknown> {
  const script = `const { Extractor } = require(${JSON.stringify(LIB)});
    const report = (value) => console.log('RESULT ' + JSON.stringify(value));
    const codeOf = async (f) => { try { await f(); return 'ok'; } catch (e) { return e.code ?? String(e); } };
    (async () => { ${body} })().catch((e) => report({ uncaught: String(e && e.stack || e) }));`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000, cwd: options.cwd });
  const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `the child ended with status ${run.status}, signal ${run.signal}: ${run.stderr.slice(-2000)}`);
  assert.equal(run.status, 0, run.stderr.slice(-2000));
  return JSON.parse(line.slice('RESULT '.length));
}

describe('layer names', () => {
  it('a 30,000-character layer name is INVALID_ARGUMENT through the constructor and create(), not a crash', () => {
    const result = inChild(`
      const name = 'layer4.' + 'x'.repeat(30000) + '_1';
      report({
        sync: await codeOf(() => new Extractor(${JSON.stringify(RESNET18)}, name, { device: 'cpu' })),
        async: await codeOf(() => Extractor.create(${JSON.stringify(RESNET18)}, [name], { device: 'cpu' })),
      });`);
    assert.deepEqual(result, { sync: 'INVALID_ARGUMENT', async: 'INVALID_ARGUMENT' });
  });

  it('a name at the length limit, with a call number, reaches native code and is LAYER_NOT_FOUND', () => {
    const result = inChild(`
      const name = 'layer4.' + 'y'.repeat(1024 - 9) + '_7';
      report({ length: name.length, code: await codeOf(() => new Extractor(${JSON.stringify(RESNET18)}, name, { device: 'cpu' })) });`);
    assert.deepEqual(result, { length: 1024, code: 'LAYER_NOT_FOUND' });
  });

  it('a model path with a NUL byte is INVALID_ARGUMENT (native code would open the part before it)', () => {
    const result = inChild(`report({ code: await codeOf(() => new Extractor(${JSON.stringify(RESNET18)} + '\\0.txt', 'layer4')) });`);
    assert.deepEqual(result, { code: 'INVALID_ARGUMENT' });
  });
});

describe('model code never runs before the check', () => {
  // bad-setstate-writes.pt: a leaf whose __setstate__ calls torch.save('...', 'setstate-canary.txt'),
  // a path relative to the loading process's working folder. LibTorch's loader runs __setstate__
  // while it unpickles: the archive is read and its code checked before that (archive_check.h).
  const file = fixture(manifest.bad.setstateWrites);
  const CANARY = 'setstate-canary.txt';
  const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.js');

  it('refused with UNSAFE_MODEL, and no file appears, through the constructor, create, verify, isolate, listLayers and bytes', () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-setstate-'));
    try {
      const result = inChild(
        `const file = ${JSON.stringify(file)};
        const bytes = require('node:fs').readFileSync(file);
        const present = () => require('node:fs').existsSync(${JSON.stringify(CANARY)});
        const codes = {
          constructor: await codeOf(() => new Extractor(file, 'conv', { device: 'cpu' })),
          create: await codeOf(() => Extractor.create(file, 'conv', { device: 'cpu' })),
          verify: await codeOf(() => Extractor.verify(file)),
          isolate: await codeOf(() => Extractor.create(file, 'conv', { device: 'cpu', isolate: true })),
          listLayers: await codeOf(() => Extractor.listLayers(file)),
          nested: await codeOf(() => Extractor.listLayers(file, { nested: true })),
          bytes: await codeOf(() => new Extractor(bytes, 'conv', { device: 'cpu' })),
        };
        report({ codes, written: present() });`,
        { cwd },
      );
      assert.deepEqual(result, {
        codes: {
          constructor: 'UNSAFE_MODEL',
          create: 'UNSAFE_MODEL',
          verify: 'UNSAFE_MODEL',
          isolate: 'UNSAFE_MODEL',
          listLayers: 'UNSAFE_MODEL',
          nested: 'UNSAFE_MODEL',
          bytes: 'UNSAFE_MODEL',
        },
        written: false,
      });
      assert.deepEqual(fs.readdirSync(cwd), []);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('the message names the operation and the method; with allowUnsafeOperations: true the model loads and its __setstate__ does write (the fixture is live)', () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-setstate-'));
    try {
      const result = inChild(
        `let message;
        try { Extractor.listLayers(${JSON.stringify(file)}); } catch (e) { message = e.message; }
        const layers = Extractor.listLayers(${JSON.stringify(file)}, { allowUnsafeOperations: true }).map((l) => l.name);
        report({ message, layers });`,
        { cwd },
      );
      assert.match(String(result.message), /aten::save in __torch__\.WritesOnLoad\.__setstate__/);
      assert.deepEqual(result.layers, ['conv', 'trap']);
      assert.deepEqual(fs.readdirSync(cwd), [CANARY]);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('every CLI command refuses it in one line, exits non-zero and writes nothing', () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-setstate-'));
    try {
      const image = path.join(os.tmpdir(), `ltf-setstate-image-${process.pid}.png`);
      // A 2x2 PNG, outside the folder watched.
      fs.writeFileSync(
        image,
        Buffer.from(
          'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==',
          'base64',
        ),
      );
      const commands = [
        ['layers', file],
        ['layers', file, '--nested'],
        ['layers', file, '--summary'],
        ['extract', file, image, '--layer', 'conv', '--out', 'features.npy', '--quiet'],
        ['maps', file, image, '--layer', 'conv', '--out', 'maps.png'],
      ];
      for (const args of commands) {
        const run = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
        assert.notEqual(run.status, 0, args.join(' '));
        const lines = run.stderr.trim().split('\n');
        assert.equal(lines.length, 1, `${args.join(' ')}: ${run.stderr}`);
        assert.match(lines[0], /reads or writes files/);
        assert.deepEqual(fs.readdirSync(cwd), [], args.join(' '));
      }
      fs.rmSync(image, { force: true });
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe('damaged archives', () => {
  it('a weight record cut short (4 of 2,304 bytes) is MODEL_LOAD_FAILED saying the file is damaged, through every entry point', () => {
    const file = fixture(manifest.bad.shortRecord);
    const result = inChild(`
      const file = ${JSON.stringify(file)};
      const messageOf = async (f) => { try { await f(); return 'loaded'; } catch (e) { return e.code + ': ' + e.message; } };
      report({
        constructor: await messageOf(() => new Extractor(file, 'head', { device: 'cpu' })),
        create: await messageOf(() => Extractor.create(file, ['head', 'body'], { device: 'cpu', optimize: true })),
        verify: await messageOf(() => Extractor.verify(file)),
        listLayers: await messageOf(() => Extractor.listLayers(file)),
        bytes: await messageOf(() => new Extractor(require('node:fs').readFileSync(file), 'head', { device: 'cpu' })),
        unsafeAllowed: await messageOf(() => new Extractor(file, 'head', { device: 'cpu', allowUnsafeOperations: true })),
      });`);
    for (const [entry, message] of Object.entries(result)) {
      assert.match(
        String(message),
        /^MODEL_LOAD_FAILED: the model file is damaged: record 'data\/0' holds 4 bytes where the model's pickle puts 2304/,
        entry,
      );
    }
  });
});

describe('code that grows with the model', () => {
  it('a condition 50,000 operations deep: an error or a listing, never a crash, through every entry point', () => {
    const file = JSON.stringify(fixture(manifest.bad.deepCondition));
    const result = inChild(`
      report({
        nested: Extractor.listLayers(${file}, { nested: true }).map((l) => l.name),
        sync: await codeOf(() => new Extractor(${file}, 'conv', { device: 'cpu' })),
        async: await codeOf(() => Extractor.create(${file}, 'conv', { device: 'cpu' })),
      });`);
    // The condition is too deep to fold, so the branch stays and 'conv' has no single output: only
    // the input is left to cut at.
    assert.deepEqual(result, { nested: ['x'], sync: 'UNSUPPORTED_CUT', async: 'UNSUPPORTED_CUT' });
  });
});

describe('prototype pollution', () => {
  it('allowUnsafeOperations planted on Object.prototype does not let a file-reading model load', () => {
    const result = inChild(`
      Object.prototype.allowUnsafeOperations = true;
      Object.prototype.isolate = true;
      report({
        sync: await codeOf(() => new Extractor(${JSON.stringify(fixture(manifest.bad.readsFile))}, 'conv', { device: 'cpu' })),
        async: await codeOf(() => Extractor.create(${JSON.stringify(fixture(manifest.bad.readsFile))}, 'conv', { device: 'cpu' })),
        plain: await codeOf(() => new Extractor(${JSON.stringify(CHAIN)}, 'head', { device: 'cpu' })),
      });`);
    assert.deepEqual(result, { sync: 'UNSAFE_MODEL', async: 'UNSAFE_MODEL', plain: 'ok' });
  });

  it("an output named '__proto__' is a key of the result, not its prototype", () => {
    const result = inChild(`
      const ex = new Extractor(${JSON.stringify(CHAIN)}, JSON.parse('{"head":"__proto__","body":"b"}'), { device: 'cpu' });
      const out = ex.extractSync({ data: new Float32Array(2 * 3 * 12 * 10).fill(0.5), shape: [2, 3, 12, 10] });
      report({
        keys: Object.keys(out),
        own: Object.prototype.hasOwnProperty.call(out, '__proto__'),
        shape: out['__proto__'].shape,
        plainPrototype: Object.getPrototypeOf(out) === Object.prototype,
      });`);
    assert.deepEqual(result, { keys: ['__proto__', 'b'], own: true, shape: [2, 8, 12, 10], plainPrototype: true });
  });
});

describe('create() hands its model to its own constructor call only', () => {
  it("changing the layer array or transferring the bytes' buffer while create() loads changes nothing later", () => {
    const result = inChild(`
      const fs = require('node:fs');
      const layers = ['layer4'];
      const pending = Extractor.create(${JSON.stringify(RESNET18)}, layers, { device: 'cpu' });
      layers[0] = 'no-such-layer';
      const bytes = new Uint8Array(fs.readFileSync(${JSON.stringify(CHAIN)}));
      const fromBytes = Extractor.create(bytes, 'head', { device: 'cpu' });
      structuredClone(bytes.buffer, { transfer: [bytes.buffer] });  // detaches it
      const first = await pending;
      const second = await fromBytes;
      const next = new Extractor(${JSON.stringify(CHAIN)}, 'tail', { device: 'cpu' });
      report({ first: first.outputNames, second: second.outputNames, next: [next.outputNames, next.keptLayers] });`);
    assert.deepEqual(result, { first: ['layer4'], second: ['head'], next: [['tail'], ['tail']] });
  });
});

describe('inputs that pass for what they are not', () => {
  // Validation runs in TypeScript, before anything goes native: no child process needed.
  const { Extractor } = require(LIB) as typeof import('../lib');
  const ex = new Extractor(CHAIN, 'head', { device: 'cpu' });
  const shape = [1, 3, 4, 4];
  const code = (f: () => unknown) => {
    try {
      f();
      return 'ok';
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    }
  };

  it('an ndarray whose data is shorter than its shape, or whose offset is past its data, is INVALID_INPUT', () => {
    const stride = [48, 16, 4, 1];
    assert.equal(
      code(() => ex.extractSync({ data: new Float32Array(47), shape, stride, offset: 0 } as never)),
      'INVALID_INPUT',
    );
    assert.equal(
      code(() => ex.extractSync({ data: new Float32Array(48), shape, stride, offset: 1 } as never)),
      'INVALID_INPUT',
    );
    assert.equal(
      code(() => ex.extractSync({ data: new Float32Array(48), shape, stride: [48, 16, -4, 1], offset: 0 } as never)),
      'INVALID_INPUT',
    );
    assert.equal(
      code(() => ex.extractSync({ data: new Float32Array(48), shape, stride: [48, 16, 4, 0.5], offset: 0 } as never)),
      'INVALID_INPUT',
    );
    // A negative stride that stays inside the data is a valid view (reversed rows).
    assert.equal(
      code(() => ex.extractSync({ data: new Float32Array(48), shape, stride: [48, 16, -4, 1], offset: 12 } as never)),
      'ok',
    );
  });

  it('a Proxy of a typed array is INVALID_INPUT saying so, for tensors and images', () => {
    const data = new Proxy(new Float32Array(48), {});
    assert.throws(() => ex.extractSync({ data, shape }), /INVALID_INPUT|a Proxy/);
    assert.equal(
      code(() => ex.extractSync({ data, shape })),
      'INVALID_INPUT',
    );
    const pixels = new Proxy(new Uint8Array(4 * 4 * 3), {});
    assert.equal(
      code(() => ex.extractSync({ data: pixels, width: 4, height: 4, channels: 3 })),
      'INVALID_INPUT',
    );
  });

  it("every code native code can give is one of lib/errors.ts's, and the README's table lists them all", async () => {
    const fs = await import('node:fs');
    const { ERROR_CODES } = await import('../lib/errors');
    const root = path.join(__dirname, '..', '..');
    const header = fs.readFileSync(path.join(root, 'native', 'common', 'errors.h'), 'utf8');
    const native = [...header.matchAll(/inline constexpr const char\* k\w+ = "([A-Z_]+)";/g)].map((m) => m[1]);
    assert.ok(native.length >= 10, 'read the native codes');
    for (const c of native) assert.ok((ERROR_CODES as readonly string[]).includes(c), `${c} is native but not in ERROR_CODES`);
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    for (const c of ERROR_CODES) assert.ok(readme.includes(`| \`${c}\` |`), `${c} is missing from the README's table of codes`);
  });
});

describe('two copies of the package in one process', () => {
  it('both load, and both run the optimised CPU path (each registers its own operator namespace)', () => {
    // A second copy as nested node_modules would hold it: its own compiled JS and its own binary.
    const fs = require('node:fs') as typeof import('node:fs');
    const os = require('node:os') as typeof import('node:os');
    const root = path.join(__dirname, '..', '..');
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-copy-'));
    try {
      fs.cpSync(path.join(root, 'dist', 'lib'), path.join(copy, 'dist', 'lib'), { recursive: true });
      fs.cpSync(path.join(root, 'package.json'), path.join(copy, 'package.json'));
      fs.cpSync(path.join(root, 'native', 'common', 'limits.json'), path.join(copy, 'native', 'common', 'limits.json'));
      fs.mkdirSync(path.join(copy, 'build', 'Release'), { recursive: true });
      fs.cpSync(
        path.join(root, 'build', 'Release', 'libtorch_features.node'),
        path.join(copy, 'build', 'Release', 'libtorch_features.node'),
      );
      fs.symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'));
      const result = inChild(`
        const Second = require(${JSON.stringify(path.join(copy, 'dist', 'lib'))}).Extractor;
        const input = { data: new Float32Array(2 * 3 * 64 * 64).fill(0.25), shape: [2, 3, 64, 64] };
        const a = new Extractor(${JSON.stringify(RESNET18)}, 'layer2', { device: 'cpu', optimize: true });
        const b = new Second(${JSON.stringify(RESNET18)}, 'layer2', { device: 'cpu', optimize: true });
        const x = a.extractSync(input), y = b.extractSync(input);
        let diff = 0;
        for (let i = 0; i < x.data.length; i++) diff = Math.max(diff, Math.abs(x.data[i] - y.data[i]));
        report({ distinct: Second !== Extractor, fused: [a.onednn.convolutions, b.onednn.convolutions], same: Extractor.runtime().onednnFusion, diff });`);
      assert.equal(result.distinct, true);
      assert.equal(result.diff, 0);
      const [first, second] = result.fused as number[];
      // With oneDNN fusion in this build, both copies rewrote the same convolutions.
      assert.equal(first, second);
      if (result.same) assert.ok(first > 0, 'the rewrite ran');
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});

/**
 * Hostile and unlucky callers (issue 11): each case runs in a child process with a time limit, so
 * that a crash is a failed case, not a dead test runner. Each child prints one JSON line.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { CHAIN, RESNET18, fixture, manifest } from './helpers';

const LIB = path.join(__dirname, '..', 'lib');

/** Runs `body` (an async function body with `Extractor` and `report` in scope) in a fresh Node. */
function inChild(body: string): Record<string, unknown> {
  const script = `const { Extractor } = require(${JSON.stringify(LIB)});
    const report = (value) => console.log('RESULT ' + JSON.stringify(value));
    const codeOf = async (f) => { try { await f(); return 'ok'; } catch (e) { return e.code ?? String(e); } };
    (async () => { ${body} })().catch((e) => report({ uncaught: String(e && e.stack || e) }));`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
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

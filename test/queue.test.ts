/**
 * The forward queue (native/runtime/forward_queue.h): each extractor runs its calls on its own thread, in
 * order, batching calls queued behind each other; no libuv pool thread waits for it. Cases that
 * leave a forward running forever run in a child process with a time limit.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { Extractor, ExtractorError, type FeatureTensor } from '../lib';
import { CPU_TOLERANCE, RESNET18, assertClose, expectError, fixture, manifest, readTensor } from './helpers';

const LIB = path.join(__dirname, '..', 'lib');
const SPIN = fixture(manifest.bad.spin);
const { cases } = manifest.resnet18;

/** One image of a seeded pattern, [1, 3, side, side]. */
function image(seed: number, side = 64): { data: Float32Array; shape: number[] } {
  const data = new Float32Array(3 * side * side);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + seed * 1.7);
  return { data, shape: [1, 3, side, side] };
}

/** Runs `body` in a fresh Node with `Extractor`, `report` and `SPIN` in scope; returns its report. */
function inChild(body: string, timeout = 60_000): { result: Record<string, unknown>; status: number | null; ms: number } {
  const script = `const { Extractor } = require(${JSON.stringify(LIB)});
    const SPIN = ${JSON.stringify(SPIN)};
    const report = (value) => console.log('RESULT ' + JSON.stringify(value));
    (async () => { ${body} })().catch((e) => { report({ uncaught: String(e && e.stack || e) }); process.exit(3); });`;
  const started = Date.now();
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout });
  const ms = Date.now() - started;
  assert.equal(run.signal, null, `the child was killed (${run.signal}) after ${ms} ms: ${run.stderr.slice(-2000)}`);
  const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `no report; status ${run.status}: ${run.stderr.slice(-2000)}`);
  return { result: JSON.parse(line.slice('RESULT '.length)), status: run.status, ms };
}

describe('the forward queue', () => {
  it('file reads complete while calls are queued: no libuv pool thread waits for a forward', async () => {
    const ex = await Extractor.create(RESNET18, 'layer4', { device: 'cpu' });
    const batch = readTensor(cases.batch4.input);
    const events: string[] = [];
    const calls = Array.from({ length: 12 }, (_, i) => ex.extract(batch).then(() => events.push(`extract ${i}`)));
    // Before, each queued call held one of libuv's four threads: these reads waited for forwards.
    const reads = Array.from({ length: 8 }, (_, i) => fs.promises.readFile(__filename).then(() => events.push(`read ${i}`)));
    await Promise.all([...calls, ...reads]);
    const firstExtract = events.indexOf('extract 0');
    for (let i = 0; i < 8; i++) assert.ok(events.indexOf(`read ${i}`) < firstExtract, events.join(', '));
    ex.dispose();
  });

  it('calls settle in the order they were made, across input shapes, tensors and images, async and sync', async () => {
    const ex = new Extractor(RESNET18, 'layer1', { device: 'cpu' });
    const order: number[] = [];
    const pixels = { data: new Uint8Array(40 * 30 * 3).fill(90), width: 40, height: 30, channels: 3 as const };
    const calls = Array.from({ length: 20 }, (_, i) => {
      const input = i % 5 === 4 ? pixels : image(i, i % 3 === 0 ? 48 : 64);
      return ex.extract(input).then(() => order.push(i));
    });
    // A sync call waits for the calls queued before it, then runs.
    ex.extractSync(image(99));
    await Promise.all(calls);
    assert.deepEqual(
      order,
      Array.from({ length: 20 }, (_, i) => i),
    );
    ex.dispose();
  });

  it('calls queued together run as one forward and each gets the rows of a call of its own (within the CPU tolerance)', async () => {
    // optimize reports every input shape it checked: batches made of several calls show there.
    const batched = new Extractor(RESNET18, ['layer2', 'layer4'], { device: 'cpu', optimize: true, pool: 'avg' });
    const alone = new Extractor(RESNET18, ['layer2', 'layer4'], { device: 'cpu', maxBatch: 1, pool: 'avg' });
    const inputs = Array.from({ length: 13 }, (_, i) => image(i));
    const results = await Promise.all(inputs.map((input) => batched.extract(input)));
    const sizes = batched.optimization.checkedShapes.map((shape) => shape[0]);
    assert.ok(
      sizes.some((n) => n > 1),
      `no call was batched with another: ${JSON.stringify(sizes)}`,
    );
    assert.ok(
      sizes.every((n) => n <= 8),
      `a batch beyond maxBatch (8): ${JSON.stringify(sizes)}`,
    );
    for (const [i, input] of inputs.entries()) {
      const expected = alone.extractSync(input) as Record<string, FeatureTensor>;
      const got = results[i] as Record<string, FeatureTensor>;
      assert.deepEqual(got.layer4.shape, [1, 512]);
      assertClose(got.layer2, expected.layer2, CPU_TOLERANCE, `call ${i} layer2`);
      assertClose(got.layer4, expected.layer4, CPU_TOLERANCE, `call ${i} layer4`);
    }
    // And against PyTorch: the four photos as four calls, batched, give PyTorch's batch of four.
    const photos = readTensor(cases.batch4.input);
    const one = 3 * 224 * 224;
    const layer4 = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    const four = await Promise.all(
      [0, 1, 2, 3].map((i) => layer4.extract({ data: photos.data.slice(i * one, (i + 1) * one), shape: [1, 3, 224, 224] })),
    );
    const joined = new Float32Array(four.reduce((n, t) => n + t.data.length, 0));
    four.forEach((t, i) => joined.set(t.data, i * t.data.length));
    assertClose({ data: joined, shape: [4, 512, 7, 7] }, readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'four calls');
    for (const e of [batched, alone, layer4]) e.dispose();
  });

  it('an AbortSignal: a waiting call is removed and rejects with ABORTED; the others are unaffected', async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    const batch = readTensor(cases.batch4.input);
    const controller = new AbortController();
    const first = ex.extract(batch);
    const second = ex.extract(batch, { signal: controller.signal });
    const third = ex.extract(image(3));
    controller.abort(new Error('user left'));
    await assert.rejects(second, expectError('ABORTED', /aborted: user left/));
    assertClose(await first, readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'first');
    assert.deepEqual((await third).shape, [1, 512, 2, 2]);
    // Aborted before the call: rejected at once, nothing queued.
    const done = new AbortController();
    done.abort();
    await assert.rejects(ex.extract(batch, { signal: done.signal }), expectError('ABORTED', /aborted/));
    await assert.rejects(ex.extract(batch, { signal: 'stop' as never }), expectError('INVALID_ARGUMENT', /AbortSignal/));
    ex.dispose();
  });

  it('time limits: per call and per extractor, TIMEOUT whether the call waits or runs', async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu', timeoutMs: 60_000 });
    const batch = readTensor(cases.batch4.input);
    const calls = [ex.extract(batch), ex.extract(batch, { timeoutMs: 1 }), ex.extract(batch)];
    await assert.rejects(calls[1], expectError('TIMEOUT', /longer than 1 ms/));
    await Promise.all([calls[0], calls[2]]);
    const hurried = new Extractor(RESNET18, 'layer4', { device: 'cpu', timeoutMs: 1 });
    await assert.rejects(hurried.extract(batch), expectError('TIMEOUT', /longer than 1 ms/));
    assert.throws(() => new Extractor(RESNET18, 'layer4', { timeoutMs: 0 }), expectError('INVALID_ARGUMENT', /timeoutMs/));
    await assert.rejects(ex.extract(batch, { timeoutMs: -5 }), expectError('INVALID_ARGUMENT', /timeoutMs/));
    await assert.rejects(ex.extract(batch, { deadline: 5 } as never), expectError('INVALID_ARGUMENT', /Unknown option 'deadline'/));
    ex.dispose();
    hurried.dispose();
  });

  it('maxQueue bounds the calls waiting: one more rejects at once with QUEUE_FULL', async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu', maxQueue: 2, maxBatch: 1 });
    const batch = readTensor(cases.batch4.input);
    const outcomes = await Promise.all(
      Array.from({ length: 7 }, () =>
        ex.extract(batch).then(
          () => 'ok',
          (e: ExtractorError) => e.code,
        ),
      ),
    );
    const accepted = outcomes.filter((o) => o === 'ok').length;
    // The running call is not waiting: two or three were taken, as the thread took the first.
    assert.ok(accepted >= 2 && accepted <= 3, outcomes.join(', '));
    assert.ok(
      outcomes.every((o) => o === 'ok' || o === 'QUEUE_FULL'),
      outcomes.join(', '),
    );
    await assert.doesNotReject(ex.extract(batch)); // room again
    assert.throws(() => new Extractor(RESNET18, 'layer4', { maxQueue: 0 }), expectError('INVALID_ARGUMENT', /maxQueue/));
    ex.dispose();
  });
});

describe('a forward that never returns', () => {
  it('the event loop keeps turning, a time limit rejects, and dispose() returns at once', () => {
    const { result } = inChild(`
      const ex = new Extractor(SPIN, 'conv', { device: 'cpu' });
      const x = { data: new Float32Array(3 * 4 * 4), shape: [1, 3, 4, 4] };
      const stuck = ex.extract(x);
      const waiting = ex.extract(x, { timeoutMs: 200 });
      const ticks = await new Promise((resolve) => { let n = 0; const t = setInterval(() => { if (++n === 5) { clearInterval(t); resolve(n); } }, 20); });
      const timeout = await waiting.then(() => 'resolved', (e) => e.code);
      const running = await ex.extract(x, { timeoutMs: 50 }).then(() => 'resolved', (e) => e.code);
      const started = Date.now();
      ex.dispose();
      const disposeMs = Date.now() - started;
      const read = await require('node:fs').promises.readFile(SPIN).then((b) => b.length > 0);
      report({ ticks, timeout, running, disposeMs, read });
      process.exit(0);`);
    assert.equal(result.ticks, 5);
    assert.equal(result.timeout, 'TIMEOUT');
    assert.equal(result.running, 'TIMEOUT');
    assert.ok((result.disposeMs as number) < 1000, `dispose took ${result.disposeMs} ms`);
    assert.equal(result.read, true);
  });

  it('process.exit() with calls running and queued exits with its code, not a crash in the teardown of LibTorch (3 times)', () => {
    for (let i = 0; i < 3; i++) {
      const { result, status } = inChild(`
        const ex = new Extractor(${JSON.stringify(RESNET18)}, 'layer4', { device: 'cpu', optimize: ${i === 1} });
        const x = { data: new Float32Array(4 * 3 * 224 * 224).fill(0.5), shape: [4, 3, 224, 224] };
        for (let n = 0; n < 12; n++) ex.extract(x);
        await new Promise((r) => setTimeout(r, 150));
        report({ exiting: true });
        process.exit(3);`);
      assert.deepEqual(result, { exiting: true });
      assert.equal(status, 3, `round ${i}`);
    }
  });

  it('process.exit() exits (with its code) while a forward spins', () => {
    const { result, status } = inChild(`
      const ex = new Extractor(SPIN, 'conv', { device: 'cpu' });
      ex.extract({ data: new Float32Array(3 * 4 * 4), shape: [1, 3, 4, 4] });
      await new Promise((r) => setTimeout(r, 200));
      report({ exiting: true });
      process.exit(7);`);
    assert.deepEqual(result, { exiting: true });
    assert.equal(status, 7);
  });

  it('worker.terminate() settles while a forward in that worker spins', () => {
    const { result, status } = inChild(`
      const { Worker } = require('node:worker_threads');
      const worker = new Worker(\`
        const { Extractor } = require(\${JSON.stringify(${JSON.stringify(LIB)})});
        const { parentPort } = require('node:worker_threads');
        const ex = new Extractor(\${JSON.stringify(SPIN)}, 'conv', { device: 'cpu' });
        ex.extract({ data: new Float32Array(3 * 4 * 4), shape: [1, 3, 4, 4] });
        parentPort.postMessage('spinning');\`, { eval: true });
      await new Promise((resolve) => worker.once('message', resolve));
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      const code = await worker.terminate();
      report({ terminated: true, code, ms: Date.now() - started });
      process.exit(0);`);
    assert.equal(result.terminated, true);
    assert.ok((result.ms as number) < 5000, `terminate took ${result.ms} ms`);
    assert.equal(status, 0);
  });
});

/**
 * Bad input never crashes the process, nothing leaks into wrong results, concurrency is correct.
 * A crash in native code would kill the whole server or Electron app.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, it } from 'node:test';

import { Extractor } from '../lib';
import { getBinding } from '../lib/binding';
import { fromNative } from '../lib/errors';
import { RESNET18, expectError, fixture, manifest, readTensor } from './helpers';

const LIB = path.join(__dirname, '..', 'lib');

/** Runs a script in a fresh Node process; returns how it ended. */
function node(script: string, args: string[] = []) {
  return spawnSync(process.execPath, [...args, '-e', script], { encoding: 'utf8', timeout: 120_000 });
}

describe('files that are not TorchScript models', () => {
  const bad = manifest.bad;
  const cases: [string, RegExp][] = [
    [bad.stateDict, /torch\.save\(\) file \(a state_dict or a pickled nn\.Module\), not TorchScript.*torch\.jit\.script\(model\)\.save/],
    [bad.pickledModule, /torch\.save\(\) file/],
    [bad.truncated, /not a zip archive|not a complete TorchScript model/],
    [bad.notTorchScript, /zip archive but not a complete TorchScript model/],
  ];
  for (const [file, message] of cases) {
    it(`${file}: MODEL_LOAD_FAILED saying what it is, sync, async and from bytes`, async () => {
      assert.throws(() => new Extractor(fixture(file), 'conv1'), expectError('MODEL_LOAD_FAILED', message));
      await assert.rejects(Extractor.create(fixture(file), 'conv1'), expectError('MODEL_LOAD_FAILED', message));
      assert.throws(() => Extractor.listLayers(fixture(file)), expectError('MODEL_LOAD_FAILED', message));
    });
  }

  it('an empty file says it is empty', () => {
    const empty = path.join(__dirname, 'empty.pt');
    require('node:fs').writeFileSync(empty, '');
    try {
      assert.throws(() => new Extractor(empty, 'conv1'), expectError('MODEL_LOAD_FAILED', /it is empty/));
    } finally {
      require('node:fs').rmSync(empty);
    }
  });

  it('a model whose forward returns a tuple: its children still cut, at one tensor each', () => {
    const file = fixture(bad.twoOutputs);
    assert.deepEqual(
      Extractor.listLayers(file).map((l) => l.name),
      ['conv', 'act'],
    );
    const out = new Extractor(file, 'act', { device: 'cpu' }).extractSync({ data: new Float32Array(12).fill(1), shape: [1, 3, 2, 2] });
    assert.deepEqual(out.shape, [1, 4, 2, 2]);
  });
});

describe('untrusted models: code that touches files is refused', () => {
  const file = fixture(manifest.bad.readsFile);
  it('UNSAFE_MODEL names the operation and where it is, sync, async and in summary', async () => {
    const message = /reads or writes files \(aten::from_file in __torch__\..*ReadsFile\.forward\).*allowUnsafeOperations: true/;
    assert.throws(() => new Extractor(file, 'conv'), expectError('UNSAFE_MODEL', message));
    await assert.rejects(Extractor.create(file, 'conv'), expectError('UNSAFE_MODEL', message));
  });

  it('runs when the user opts in', () => {
    const ex = new Extractor(file, 'conv', { device: 'cpu', allowUnsafeOperations: true });
    assert.deepEqual(ex.extractSync({ data: new Float32Array(12), shape: [1, 3, 2, 2] }).shape, [1, 4, 2, 2]);
  });

  it("torchvision's models pass", () => {
    for (const name of ['resnet18', 'mobilenet_v2', 'densenet121'] as const) {
      const model = name === 'resnet18' ? RESNET18 : fixture(manifest[name].file);
      new Extractor(model, manifest[name].layers[0].name, { device: 'cpu' }).dispose();
    }
  });
});

describe('every kind of C++ exception becomes an ExtractorError, sync and async', () => {
  const kinds: [string, string, RegExp][] = [
    ['c10', 'FORWARD_FAILED', /a c10::Error from TORCH_CHECK/],
    ['oom', 'OUT_OF_MEMORY', /out of memory.*smaller batch/],
    // Inside a model the interpreter rethrows it as a std::runtime_error: recognised by its
    // words, and the traceback left out.
    ['oom_in_model', 'OUT_OF_MEMORY', /^out of memory: CUDA out of memory\. Tried to allocate 64\.00 GiB \(test\)\. \(try a smaller batch/],
    ['bad_alloc', 'OUT_OF_MEMORY', /out of host memory/],
    ['std', 'FORWARD_FAILED', /a std::runtime_error/],
    ['native', 'LAYER_NOT_FOUND', /a NativeError with its own code/],
    ['other', 'INTERNAL', /an unknown native exception/],
  ];
  for (const [kind, code, message] of kinds) {
    it(`${kind} -> ${code}`, async () => {
      assert.throws(
        () => {
          try {
            getBinding()._testThrow(kind, false);
          } catch (error) {
            throw fromNative(error);
          }
        },
        expectError(code, message),
      );
      await assert.rejects(
        (getBinding()._testThrow(kind, true) as Promise<void>).catch((error) => {
          throw fromNative(error);
        }),
        expectError(code, message),
      );
    });
  }
});

describe('inputs that are odd but legal, and odd and illegal', () => {
  const ex = new Extractor(RESNET18, 'conv1', { device: 'cpu' });

  it('NaN and Infinity pass through as PyTorch would', () => {
    const data = new Float32Array(3 * 8 * 8).fill(0.5);
    data[0] = NaN;
    data[3 * 8 * 8 - 1] = Infinity;
    const out = ex.extractSync({ data, shape: [1, 3, 8, 8] });
    // conv1 (7x7, stride 2) spreads each into the outputs whose window covers it: a 7x7 kernel of
    // mixed-sign weights turns Infinity into +-Infinity or NaN, and NaN stays NaN.
    assert.ok(Number.isNaN(out.data[0]), 'the NaN reaches the first output');
    const last = out.data[out.data.length - 1];
    assert.ok(!Number.isFinite(last), `the Infinity reaches the last output (${last})`);
    // Outputs whose windows cover neither stay finite.
    assert.ok(Number.isFinite(out.data[2]), `output (0, 2) covers neither: ${out.data[2]}`);
  });

  it('a detached ArrayBuffer is INVALID_INPUT, not a crash', () => {
    const data = new Float32Array(3 * 8 * 8);
    structuredClone(data.buffer, { transfer: [data.buffer] });
    assert.throws(() => ex.extractSync({ data, shape: [1, 3, 8, 8] }), expectError('INVALID_INPUT', /has 0 values/));
  });
});

describe('concurrency and lifetimes', () => {
  const input = readTensor(manifest.resnet18.cases.nonsquare.input);

  it('64 extract() calls in flight on one extractor give exactly the sequential results', async () => {
    const ex = new Extractor(RESNET18, 'layer2', { device: 'cpu' });
    const inputs = Array.from({ length: 64 }, (_, i) => ({ data: input.data.map((v) => v * (1 + i / 64)), shape: input.shape }));
    const sequential = inputs.map((x) => ex.extractSync(x).data);
    const parallel = await Promise.all(inputs.map((x) => ex.extract(x)));
    parallel.forEach((out, i) => assert.deepEqual(out.data, sequential[i], `call ${i}`));
    ex.dispose();
  });

  it('several extractors at once, each right', async () => {
    const layers = ['layer1', 'layer2', 'layer3.1.conv2'];
    const all = layers.map((layer) => new Extractor(RESNET18, layer, { device: 'cpu' }));
    const expected = all.map((ex) => ex.extractSync(input).data);
    const outs = await Promise.all(all.flatMap((ex) => [ex.extract(input), ex.extract(input)]));
    outs.forEach((out, i) => assert.deepEqual(out.data, expected[Math.floor(i / 2)]));
    all.forEach((ex) => ex.dispose());
  });

  it('the event loop stays responsive while a batch runs (lag measured)', async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    const batch = { data: new Float32Array(16 * 3 * 224 * 224).fill(0.1), shape: [16, 3, 224, 224] };
    const histogram = monitorEventLoopDelay({ resolution: 5 });
    histogram.enable();
    const started = performance.now();
    await ex.extract(batch);
    const took = performance.now() - started;
    histogram.disable();
    const maxLagMs = histogram.max / 1e6;
    // A blocked loop would lag by the whole forward.
    assert.ok(maxLagMs < took / 2, `max event-loop lag ${maxLagMs.toFixed(1)} ms during a ${took.toFixed(0)} ms forward`);
    ex.dispose();
  });

  it('thread counts stay bounded: 64 calls in flight on 4 extractors add a handful of threads, not one per call', async () => {
    const threads = () => Number(/Threads:\s+(\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))![1]);
    const before = threads();
    const all = ['conv1', 'layer1', 'layer2', 'layer3'].map((layer) => new Extractor(RESNET18, layer, { device: 'cpu', threads: 2 }));
    let peak = 0;
    const calls = Array.from({ length: 64 }, (_, i) => all[i % 4].extract(input).then(() => (peak = Math.max(peak, threads()))));
    await Promise.all(calls);
    // Per extractor: its forward thread and LibTorch's intra-op pool (2 here); plus libuv's 4.
    const bound = before + 4 * (1 + 2) + 4;
    assert.ok(peak <= bound, `threads rose from ${before} to ${peak} (bound ${bound})`);
    all.forEach((ex) => ex.dispose());
  });

  it('an extractor garbage-collected with a promise pending still resolves it', () => {
    const run = node(
      `const { Extractor } = require(${JSON.stringify(LIB)});
       let pending = new Extractor(${JSON.stringify(RESNET18)}, 'layer3', { device: 'cpu' })
         .extract({ data: new Float32Array(3 * 64 * 64), shape: [1, 3, 64, 64] });
       for (let i = 0; i < 5; i++) global.gc();
       pending.then((out) => { for (let i = 0; i < 5; i++) global.gc(); console.log(out.shape.join('x')); });`,
      ['--expose-gc'],
    );
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), '1x256x4x4');
  });

  it('load and extract inside a worker_thread, and terminating it mid-run, leave the process well', () => {
    const run = node(`
      const { Worker } = require('node:worker_threads');
      const code = \`
        const { parentPort } = require('node:worker_threads');
        const { Extractor } = require(${JSON.stringify(LIB)});
        (async () => {
          const ex = await Extractor.create(${JSON.stringify(RESNET18)}, 'layer4', { device: 'cpu' });
          const out = await ex.extract({ data: new Float32Array(3 * 64 * 64), shape: [1, 3, 64, 64] });
          parentPort.postMessage(out.shape.join('x'));
          for (;;) await ex.extract({ data: new Float32Array(8 * 3 * 224 * 224), shape: [8, 3, 224, 224] });
        })();\`;
      const worker = new Worker(code, { eval: true });
      worker.on('message', async (shape) => {
        console.log('worker gave', shape);
        await new Promise((r) => setTimeout(r, 300));
        await worker.terminate();
        const { Extractor } = require(${JSON.stringify(LIB)});
        const ex = new Extractor(${JSON.stringify(RESNET18)}, 'conv1', { device: 'cpu' });
        console.log('main still works', ex.extractSync({ data: new Float32Array(3 * 8 * 8), shape: [1, 3, 8, 8] }).shape.join('x'));
      });
      worker.on('error', (e) => { console.error('worker error', e); process.exitCode = 1; });`);
    assert.equal(run.status, 0, `${run.stderr} (signal ${run.signal})`);
    assert.match(run.stdout, /worker gave 1x512x2x2/);
    assert.match(run.stdout, /main still works 1x64x4x4/);
  });

  it('process.exit() with work in flight: a clean exit, no abort', () => {
    const run = node(`
      const { Extractor } = require(${JSON.stringify(LIB)});
      const ex = new Extractor(${JSON.stringify(RESNET18)}, 'layer4', { device: 'cpu' });
      for (let i = 0; i < 4; i++) ex.extract({ data: new Float32Array(8 * 3 * 224 * 224), shape: [8, 3, 224, 224] });
      setTimeout(() => process.exit(0), 50);`);
    assert.equal(run.signal, null, run.stderr);
    assert.equal(run.status, 0, run.stderr);
  });
});

describe('leaks', () => {
  it('a short soak: 300 extractions and 20 load/dispose cycles leave resident memory flat after warm-up', () => {
    const run = spawnSync(
      process.execPath,
      ['--expose-gc', path.join(__dirname, '..', '..', 'scripts', 'soak'), '--extractions', '300', '--cycles', '20', '--max-growth', '64'],
      {
        encoding: 'utf8',
        timeout: 300_000,
      },
    );
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /growth after warm-up: -?[\d.]+ MiB/);
  });
});

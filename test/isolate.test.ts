/** Untrusted models tried in a child process: a crash or a memory bomb costs the child, not us. */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { Extractor } from '../lib';
import { CHAIN, RESNET18, expectError, fixture, manifest } from './helpers';

describe('Extractor.verify and isolate', () => {
  it('a good model: what the child found', async () => {
    const report = await Extractor.verify(RESNET18, { layer: 'layer4', inputShape: [1, 3, 64, 64] });
    assert.deepEqual(report.outputShapes, [[1, 512, 2, 2]]);
    assert.equal(report.parameterCount, 11_176_512);
    assert.equal(report.layers.length, 10);
    assert.ok(report.peakMemoryMiB > 0);
  });

  it('bytes work too; the default cut is the last top-level child', async () => {
    const report = await Extractor.verify(fs.readFileSync(RESNET18), { inputShape: [1, 3, 32, 32] });
    assert.deepEqual(report.outputShapes, [[1, 1000]]);
  });

  it('a memory bomb is stopped at the limit: MODEL_REJECTED, and this process carries on', async () => {
    await assert.rejects(
      Extractor.verify(fixture(manifest.bad.memoryBomb), { maxMemoryMiB: 600, inputShape: [1, 3, 8, 8] }),
      expectError('MODEL_REJECTED', /more than 600 MiB of memory \(maxMemoryMiB\)/),
    );
    assert.ok(process.memoryUsage().rss < 2 ** 31);
  });

  it('a child that crashes (as a loader segfault would): MODEL_REJECTED naming the signal', async () => {
    process.env.LTF_VERIFY_TEST_ABORT = '1';
    try {
      await assert.rejects(Extractor.verify(RESNET18), expectError('MODEL_REJECTED', /killed by SIGABRT/));
    } finally {
      delete process.env.LTF_VERIFY_TEST_ABORT;
    }
  });

  it('a time limit: MODEL_REJECTED', async () => {
    await assert.rejects(Extractor.verify(RESNET18, { timeoutMs: 1 }), expectError('MODEL_REJECTED', /longer than 1 ms/));
  });

  it('ordinary errors keep their codes', async () => {
    await assert.rejects(Extractor.verify(fixture(manifest.bad.stateDict)), expectError('MODEL_LOAD_FAILED', /torch\.save\(\) file/));
    await assert.rejects(Extractor.verify(fixture(manifest.bad.readsFile)), expectError('UNSAFE_MODEL', /aten::from_file/));
    await assert.rejects(Extractor.verify(RESNET18, { layer: 'layer9' }), expectError('LAYER_NOT_FOUND', /layer9/));
  });

  it('isolate: true in Extractor.create verifies first; the constructor refuses it', async () => {
    const ex = await Extractor.create(RESNET18, 'layer2', { device: 'cpu', isolate: { inputShape: [1, 3, 32, 32] } });
    assert.equal(ex.parameterCount, 683_072);
    await assert.rejects(
      Extractor.create(fixture(manifest.bad.memoryBomb), 'bomb', { isolate: { maxMemoryMiB: 600, inputShape: [1, 3, 8, 8] } }),
      expectError('MODEL_REJECTED', /maxMemoryMiB/),
    );
    assert.throws(() => new Extractor(RESNET18, 'layer2', { isolate: true }), expectError('INVALID_ARGUMENT', /Extractor\.create/));
  });

  it('a verdict of success followed by a crash is MODEL_REJECTED: only a child that exits cleanly passes', async () => {
    process.env.LTF_VERIFY_TEST_CRASH_AFTER = '1';
    try {
      await assert.rejects(Extractor.verify(CHAIN, { layer: 'head', inputShape: [1, 3, 8, 8] }), expectError('MODEL_REJECTED', /SIGSEGV/));
      await assert.rejects(
        Extractor.create(CHAIN, 'head', { device: 'cpu', isolate: { inputShape: [1, 3, 8, 8] } }),
        expectError('MODEL_REJECTED', /SIGSEGV/),
      );
    } finally {
      delete process.env.LTF_VERIFY_TEST_CRASH_AFTER;
    }
  });

  it('a child that cannot be started is MODEL_REJECTED, not an uncaught error', () => {
    const lib = path.join(__dirname, '..', 'lib');
    const script = `const { Extractor } = require(${JSON.stringify(lib)});
      process.execPath = '/nonexistent/node';
      Extractor.verify(${JSON.stringify(CHAIN)}).then(() => console.log('RESULT ok'), (e) => console.log('RESULT ' + e.code + ' ' + e.message));`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /RESULT MODEL_REJECTED .*could not be started/);
  });

  it("the child tries the real load's options (a device that is not there fails there)", async () => {
    await assert.rejects(
      Extractor.verify(CHAIN, { layer: 'head', inputShape: [1, 3, 8, 8], options: { device: 'cuda:7' } }),
      expectError('DEVICE_UNAVAILABLE', /cuda:7/),
    );
    await assert.rejects(
      Extractor.create(CHAIN, 'head', { device: 'cpu', dtype: 'float16', isolate: { inputShape: [1, 3, 8, 8] } }),
      expectError('INVALID_ARGUMENT', /float16.*needs CUDA/),
    );
  });

  it('with isolate, a model path is read once: the bytes the child tried are the ones loaded', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-isolate-'));
    const file = path.join(dir, 'model.pt');
    fs.copyFileSync(RESNET18, file);
    try {
      const pending = Extractor.create(file, 'layer2', { device: 'cpu', isolate: { inputShape: [1, 3, 32, 32] } });
      // Swapped while the child loads it (which takes hundreds of milliseconds).
      fs.copyFileSync(CHAIN, file);
      const ex = await pending;
      assert.equal(ex.parameterCount, 683_072);
      assert.equal(ex.layers.length, 10);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('under Electron the child is started as plain Node (ELECTRON_RUN_AS_NODE), elsewhere not', () => {
    const lib = path.join(__dirname, '..', 'lib');
    const script = `const childProcess = require('node:child_process');
      const seen = [];
      const spawn = childProcess.spawn;
      childProcess.spawn = (file, args, options) => { seen.push(options.env.ELECTRON_RUN_AS_NODE ?? null); return spawn(file, args, options); };
      const { Extractor } = require(${JSON.stringify(lib)});
      (async () => {
        await Extractor.verify(${JSON.stringify(CHAIN)}, { layer: 'head', inputShape: [1, 3, 8, 8] });
        Object.defineProperty(process.versions, 'electron', { value: '30.0.0' });
        await Extractor.verify(${JSON.stringify(CHAIN)}, { layer: 'head', inputShape: [1, 3, 8, 8] });
        console.log('RESULT ' + JSON.stringify(seen));
      })();`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /RESULT \[null,"1"\]/);
  });
});

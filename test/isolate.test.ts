/** Untrusted models tried in a child process: a crash or a memory bomb costs the child, not us. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';

import { Extractor } from '../lib';
import { RESNET18, expectError, fixture, manifest } from './helpers';

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
});

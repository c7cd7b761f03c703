/** CUDA: the same cuts on the GPU match the CPU and PyTorch. Skipped, with the reason, without one. */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { Extractor } from '../lib';
import { CUDA_TOLERANCE, RESNET18, assertClose, cudaSkipReason, manifest, readTensor } from './helpers';

const skip = cudaSkipReason();
const { cases } = manifest.resnet18;

describe('CUDA', { skip }, () => {
  for (const layer of manifest.resnet18.chainLayers) {
    it(`${layer} on cuda:0 matches PyTorch's CPU output within ${CUDA_TOLERANCE}`, async () => {
      const ex = await Extractor.create(RESNET18, layer, { device: 'cuda' });
      assertClose(
        await ex.extract(readTensor(cases.batch4.input)),
        readTensor(cases.batch4.outputs[layer]),
        CUDA_TOLERANCE,
        `${layer} cuda`,
      );
      assertClose(
        ex.extractSync(readTensor(cases.nonsquare.input)),
        readTensor(cases.nonsquare.outputs[layer]),
        CUDA_TOLERANCE,
        `${layer} cuda 160x200`,
      );
      ex.dispose();
    });
  }

  it('CUDA out of memory is OUT_OF_MEMORY, and the same extractor then works at a smaller batch', async () => {
    const ex = new Extractor(RESNET18, 'layer1', { device: 'cuda' });
    // 16 images of 8192x8192: 13 GB in, and conv1 + bn1 alone need ~137 GB on the GPU, more than an
    // H100 (80 GB) or an H200 (141 GB) holds.
    const huge = { data: new Float32Array(16 * 3 * 8192 * 8192), shape: [16, 3, 8192, 8192] };
    await assert.rejects(ex.extract(huge), (e: unknown) => (e as { code?: string }).code === 'OUT_OF_MEMORY');
    const small = await ex.extract({ data: new Float32Array(3 * 64 * 64), shape: [1, 3, 64, 64] });
    assert.deepEqual(small.shape, [1, 64, 16, 16]);
    ex.dispose();
  });

  it('with CUDA_VISIBLE_DEVICES empty, a CUDA request is DEVICE_UNAVAILABLE', () => {
    const script = `const { Extractor } = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
      try { new Extractor(${JSON.stringify(RESNET18)}, 'layer1', { device: 'cuda' }); console.log('loaded'); }
      catch (e) { console.log(e.code); }`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, CUDA_VISIBLE_DEVICES: '' } });
    assert.equal(run.stdout.trim(), 'DEVICE_UNAVAILABLE', run.stderr);
  });

  it("the default device is 'cuda:0' when CUDA is present", () => {
    const ex = new Extractor(RESNET18, 'layer4');
    if (ex.device !== 'cuda:0') throw new Error(`default device is ${ex.device}`);
    ex.dispose();
  });
});

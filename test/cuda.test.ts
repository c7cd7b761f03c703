/** CUDA: the same cuts on the GPU match the CPU and PyTorch. Skipped, with the reason, without one. */
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

  it("the default device is 'cuda:0' when CUDA is present", () => {
    const ex = new Extractor(RESNET18, 'layer4');
    if (ex.device !== 'cuda:0') throw new Error(`default device is ${ex.device}`);
    ex.dispose();
  });
});

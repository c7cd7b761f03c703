/** Precision and layout options, with their tolerances against the float32 result. */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Extractor, ExtractorError } from '../lib';
import {
  CPU_TOLERANCE,
  CUDA_TOLERANCE,
  RESNET18,
  assertClose,
  cudaSkipReason,
  manifest,
  maxAbs,
  maxAbsDiff,
  meanAbsDiff,
  fixture,
  readImage,
  readTensor,
} from './helpers';

const { cases } = manifest.resnet18;
const batch = readTensor(cases.batch4.input);
const layer4 = readTensor(cases.batch4.outputs.layer4);

describe('CPU', () => {
  it('bfloat16: within 5% of the largest value (max-abs) and 0.5% on average of the float32 result, as Float32Array', () => {
    for (const layer of ['layer4', 'layer3.1.conv2']) {
      const out = new Extractor(RESNET18, layer, { device: 'cpu', dtype: 'bfloat16' }).extractSync(batch);
      const expected = readTensor(cases.batch4.outputs[layer]);
      assert.ok(out.data instanceof Float32Array);
      const scale = maxAbs(expected.data);
      assert.ok(maxAbsDiff(out.data, expected.data) <= 0.05 * scale, `${layer}: max ${maxAbsDiff(out.data, expected.data)} of ${scale}`);
      assert.ok(meanAbsDiff(out.data, expected.data) <= 0.005 * scale, `${layer}: mean ${meanAbsDiff(out.data, expected.data)}`);
    }
  });

  it("bfloat16 with optimize, channels-last: batch norms folded in float32 then cast; level 'full', checked against float32, as close to PyTorch's float32 as the plain bfloat16 cut", () => {
    for (const layer of ['layer4', 'layer2']) {
      const expected = readTensor(cases.batch4.outputs[layer]);
      const options = { device: 'cpu', dtype: 'bfloat16', channelsLast: true } as const;
      const plain = new Extractor(RESNET18, layer, options).extractSync(batch);
      const ex = new Extractor(RESNET18, layer, { ...options, optimize: true });
      const out = ex.extractSync(batch);
      assert.equal(ex.optimization.level, 'full', `${layer}: ${ex.optimization.fallback}`);
      assert.deepEqual(ex.optimization.checkedShapes, [batch.shape]);
      const scale = maxAbs(expected.data);
      const optimized = maxAbsDiff(out.data, expected.data);
      assert.ok(optimized <= 0.05 * scale, `${layer}: max ${optimized} of ${scale}`);
      assert.ok(meanAbsDiff(out.data, expected.data) <= 0.005 * scale, `${layer}: mean ${meanAbsDiff(out.data, expected.data)}`);
      // Folded in float32, the weights keep what bfloat16 folding loses: no worse than plain (give or take rounding).
      assert.ok(
        optimized <= 1.5 * maxAbsDiff(plain.data, expected.data),
        `${layer}: ${optimized} against plain ${maxAbsDiff(plain.data, expected.data)}`,
      );
      ex.dispose();
    }
  });

  it('float16 on the CPU: INVALID_ARGUMENT saying it needs CUDA', () => {
    assert.throws(
      () => new Extractor(RESNET18, 'layer4', { device: 'cpu', dtype: 'float16' }),
      (e: unknown) => e instanceof ExtractorError && e.code === 'INVALID_ARGUMENT' && /needs CUDA/.test(e.message),
    );
  });

  it('tf32 changes nothing on the CPU: the same bits', () => {
    const strict = new Extractor(RESNET18, 'layer2', { device: 'cpu' }).extractSync(batch);
    const tf32 = new Extractor(RESNET18, 'layer2', { device: 'cpu', tf32: true }).extractSync(batch);
    assert.deepEqual(tf32.data, strict.data);
  });

  it('channelsLast: the float32 result within the CPU tolerance, both strategies', () => {
    for (const layer of ['layer4', 'layer3.1.conv2']) {
      const ex = new Extractor(RESNET18, layer, { device: 'cpu', channelsLast: true });
      assertClose(ex.extractSync(batch), readTensor(cases.batch4.outputs[layer]), CPU_TOLERANCE, `${layer} channels-last`);
    }
  });
});

describe('optimize: frozen with conv-bn folding and optimize_for_inference', () => {
  it('matches PyTorch within the CPU tolerance on three architectures, keeping the same parameters', () => {
    for (const [file, layer, input, expected, params] of [
      [RESNET18, 'layer4', batch, layer4, 11_176_512],
      [RESNET18, 'layer3.1.conv2', batch, readTensor(cases.batch4.outputs['layer3.1.conv2']), 2_782_272],
      [
        fixture(manifest.mobilenet_v2.file),
        'features',
        readTensor(manifest.mobilenet_v2.input),
        readTensor(manifest.mobilenet_v2.outputs.features),
        manifest.mobilenet_v2.parameterCounts.features,
      ],
      [
        fixture(manifest.densenet121.file),
        'classifier',
        readTensor(manifest.densenet121.input),
        readTensor(manifest.densenet121.modelOutput),
        manifest.densenet121.parameterCounts.classifier,
      ],
    ] as const) {
      const ex = new Extractor(file, layer, { device: 'cpu', optimize: true });
      assert.equal(ex.strategy, 'graph');
      assert.equal(ex.parameterCount, params, layer);
      assertClose(ex.extractSync(input), expected, CPU_TOLERANCE, `${layer} optimized`);
      ex.dispose();
    }
  });

  it('threads: an intra-op thread count runs the same numbers; a bad one is INVALID_ARGUMENT', () => {
    const one = new Extractor(RESNET18, 'layer2', { device: 'cpu', threads: 1 }).extractSync(batch);
    assertClose(one, readTensor(cases.batch4.outputs.layer2), CPU_TOLERANCE, 'threads: 1');
    for (const threads of [0, 1.5, '2']) {
      assert.throws(() => new Extractor(RESNET18, 'layer2', { threads: threads as never }), /integer from 1 to 1024 for threads/);
    }
  });
});

describe('CUDA precision', { skip: cudaSkipReason() }, () => {
  it('float16 and channels-last: within 2% of the largest value of the float32 result', async () => {
    for (const options of [
      { dtype: 'float16' as const },
      { dtype: 'float16' as const, channelsLast: true },
      { dtype: 'bfloat16' as const },
    ]) {
      const out = await new Extractor(RESNET18, 'layer4', { device: 'cuda', ...options }).extract(batch);
      const limit = (options.dtype === 'bfloat16' ? 0.05 : 0.02) * maxAbs(layer4.data);
      assert.ok(maxAbsDiff(out.data, layer4.data) <= limit, `${JSON.stringify(options)}: ${maxAbsDiff(out.data, layer4.data)}`);
    }
  });

  it('float32 channels-last on CUDA matches the CPU within the CUDA tolerance', async () => {
    const out = await new Extractor(RESNET18, 'layer3.1.conv2', { device: 'cuda', channelsLast: true }).extract(batch);
    assertClose(out, readTensor(cases.batch4.outputs['layer3.1.conv2']), CUDA_TOLERANCE, 'cuda channels-last');
  });

  it('images are preprocessed on the GPU as on the CPU', async () => {
    const photos = manifest.preprocess.images.slice(0, 2).map(readImage);
    const gpu = await new Extractor(RESNET18, 'layer2', { device: 'cuda' }).extract(photos);
    const cpu = await new Extractor(RESNET18, 'layer2', { device: 'cpu' }).extract(photos);
    assertClose(gpu, cpu, CUDA_TOLERANCE, 'images on cuda');
  });
});

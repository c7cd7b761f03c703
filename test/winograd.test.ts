/**
 * float32 `optimize` on LibTorch 2.x: the cut channels-last on LibTorch's fused oneDNN operator,
 * with 3x3 stride-1 convolutions on the addon's own Winograd F(4x4, 3x3) convolution
 * (native/winograd/). Every result is compared with PyTorch's (hooks on the eager model) at the
 * float32 CPU tolerance: 1e-4 of the largest |value| (where above 1).
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Extractor, ExtractorError, type FeatureTensor, type OneDnnReport } from '../lib';
import { CPU_TOLERANCE, assertClose, fixture, manifest, readTensor } from './helpers';

const runtime = Extractor.runtime();
const skip = !runtime.winograd
  ? `LibTorch ${runtime.torchVersion} has no mkldnn::_linear_pointwise (LibTorch 2.x built with oneDNN has it), or LTF_ONEDNN_FUSION=0`
  : !runtime.onednnCaches.usable
    ? `oneDNN is off here: ${runtime.onednnCaches.reason}`
    : false;
const ZERO: OneDnnReport = { convolutions: 0, winograd: 0, fusedActivations: 0, fusedResiduals: 0 };
const F32 = { device: 'cpu', optimize: true } as const;
const { cases } = manifest.resnet18;
const batch4 = readTensor(cases.batch4.input);
const RESNET18 = fixture(manifest.resnet18.file);

/** The first `count` images of a [N, ...] tensor. */
function firstImages(tensor: { data: Float32Array; shape: number[] }, count: number) {
  const per = tensor.data.length / tensor.shape[0];
  return { data: tensor.data.slice(0, per * count), shape: [count, ...tensor.shape.slice(1)] };
}

describe("float32 optimize on the addon's own Winograd convolution", { skip }, () => {
  it('ResNet-18 at layer4: 13 of 20 convolutions on Winograd, every activation and residual fused, counted at the first batch; within 1e-4 of PyTorch', () => {
    const ex = new Extractor(RESNET18, 'layer4', F32);
    assert.deepEqual(ex.onednn, ZERO, 'the weights are packed for the first input, not before');
    const out = ex.extractSync(batch4);
    assert.equal(ex.optimization.level, 'full', String(ex.optimization.fallback));
    assert.deepEqual(ex.onednn, { convolutions: 20, winograd: 13, fusedActivations: 17, fusedResiduals: 8 });
    assertClose(out, readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'layer4');
    ex.dispose();
  });

  it('every recorded ResNet-18 layer at once: right, and a convolution whose result is asked for keeps it', () => {
    const layers = Object.keys(cases.batch4.outputs).filter((layer) => !['avgpool', 'fc'].includes(layer));
    const ex = new Extractor(RESNET18, layers, F32);
    const out = ex.extractSync(batch4) as Record<string, FeatureTensor>;
    assert.equal(ex.optimization.level, 'full', String(ex.optimization.fallback));
    assert.equal(ex.onednn.winograd, 13, JSON.stringify(ex.onednn));
    assert.ok(ex.onednn.fusedActivations < 17 && ex.onednn.fusedResiduals < 8, JSON.stringify(ex.onednn));
    for (const layer of layers) assertClose(out[layer], readTensor(cases.batch4.outputs[layer]), CPU_TOLERANCE, layer);
    // Pre-activation outputs have negative values: a ReLU fused into them would have lost them.
    assert.ok(out['layer3.1.conv2'].data.some((v) => v < 0));
    assert.ok(out['layer1.0.bn2'].data.some((v) => v < 0));
    ex.dispose();
  });

  it('batch 1 first (layer3 and layer4 too small for Winograd: the direct path), then 160x200 (partial tiles) and batch 4: each checked and right', () => {
    const ex = new Extractor(RESNET18, ['layer2', 'layer4'], F32);
    const one = firstImages(batch4, 1);
    const expected = {
      layer2: readTensor(cases.batch4.outputs.layer2),
      layer4: readTensor(cases.batch4.outputs.layer4),
    };
    const single = ex.extractSync(one) as Record<string, FeatureTensor>;
    assertClose(single.layer2, firstImages(expected.layer2, 1), CPU_TOLERANCE, 'batch 1 layer2');
    assertClose(single.layer4, firstImages(expected.layer4, 1), CPU_TOLERANCE, 'batch 1 layer4');
    assert.equal(ex.onednn.winograd, 13, JSON.stringify(ex.onednn));
    const nonsquare = readTensor(cases.nonsquare.input);
    const wide = ex.extractSync(nonsquare) as Record<string, FeatureTensor>;
    assertClose(wide.layer2, readTensor(cases.nonsquare.outputs.layer2), CPU_TOLERANCE, '160x200 layer2');
    assertClose(wide.layer4, readTensor(cases.nonsquare.outputs.layer4), CPU_TOLERANCE, '160x200 layer4');
    const four = ex.extractSync(batch4) as Record<string, FeatureTensor>;
    assertClose(four.layer2, expected.layer2, CPU_TOLERANCE, 'batch 4 layer2');
    assertClose(four.layer4, expected.layer4, CPU_TOLERANCE, 'batch 4 layer4');
    assert.equal(ex.optimization.level, 'full', String(ex.optimization.fallback));
    assert.deepEqual(ex.optimization.checkedShapes, [one.shape, nonsquare.shape, batch4.shape]);
    ex.dispose();
  });

  it("a first batch that cannot run: FORWARD_FAILED in LibTorch's words, nothing rewritten; the next batch is rewritten and right", () => {
    const ex = new Extractor(RESNET18, 'layer4', F32);
    const wrong = { data: new Float32Array(4 * 64 * 64), shape: [1, 4, 64, 64] };
    assert.throws(
      () => ex.extractSync(wrong),
      (e: unknown) =>
        e instanceof ExtractorError && e.code === 'FORWARD_FAILED' && /to have 3 channels, but got 4 channels/.test(e.message),
    );
    assert.deepEqual(ex.onednn, ZERO);
    assertClose(ex.extractSync(batch4), readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'after the error');
    assert.equal(ex.onednn.winograd, 13);
    ex.dispose();
  });

  it("winograd: false or LTF_ONEDNN_FUSION=0: LibTorch's optimize_for_inference graph, nothing counted, right", () => {
    const direct = new Extractor(RESNET18, 'layer4', { ...F32, winograd: false });
    process.env.LTF_ONEDNN_FUSION = '0';
    let off: Extractor;
    try {
      off = new Extractor(RESNET18, 'layer4', F32);
    } finally {
      delete process.env.LTF_ONEDNN_FUSION;
    }
    for (const ex of [direct, off]) {
      assertClose(ex.extractSync(batch4), readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'layer4');
      assert.deepEqual(ex.onednn, ZERO);
      assert.equal(ex.optimization.level, 'full', String(ex.optimization.fallback));
      ex.dispose();
    }
  });

  it('two extractors running at once on their own threads (two OpenMP teams): both right', async () => {
    const a = new Extractor(RESNET18, 'layer3', F32);
    const b = new Extractor(RESNET18, 'layer3', F32);
    const expected = readTensor(cases.batch4.outputs.layer3);
    const results = await Promise.all([a.extract(batch4), b.extract(batch4), a.extract(batch4), b.extract(batch4)]);
    for (const [i, out] of results.entries()) assertClose(out as FeatureTensor, expected, CPU_TOLERANCE, `run ${i}`);
    assert.equal(a.onednn.winograd, 10);
    a.dispose();
    b.dispose();
  });
});

describe('the Winograd shapes with optimize, wherever it runs', () => {
  it('awkward shapes, on every LibTorch (1.13: its oneDNN rewrite): 24, 40, 80 and 32 channels (partial 64-channel steps), no bias, residuals with and without a ReLU and one that broadcasts, SiLU left alone, partial tiles; 120 tiles, 9 (direct) and 1,520 (in chunks)', () => {
    const { file, cases: blocks } = manifest.winogradBlocks;
    for (const [name, item] of Object.entries(blocks)) {
      const input = readTensor(item.input);
      const last = new Extractor(fixture(file), 'out', F32);
      assertClose(last.extractSync(input) as FeatureTensor, readTensor(item.outputs.out), CPU_TOLERANCE, `${name} out`);
      if (!skip) {
        assert.equal(last.optimization.level, 'full', String(last.optimization.fallback));
        // a, b and g with their ReLU, b, d and g (broadcast: added by LibTorch at run time) with their
        // residual; e's SiLU stays a pass of its own.
        assert.deepEqual(last.onednn, { convolutions: 6, winograd: 6, fusedActivations: 3, fusedResiduals: 3 }, name);
      }
      const layers = Object.keys(item.outputs);
      const all = new Extractor(fixture(file), layers, F32);
      const out = all.extractSync(input) as Record<string, FeatureTensor>;
      if (!skip) assert.equal(all.optimization.level, 'full', String(all.optimization.fallback));
      for (const layer of layers) {
        assertClose(out[layer], readTensor(item.outputs[layer as keyof typeof item.outputs]), CPU_TOLERANCE, `${name} ${layer}`);
      }
      last.dispose();
      all.dispose();
    }
  });
});

describe('where the Winograd convolution does not apply', () => {
  it('runtime().winograd: false on LibTorch 1.x and with LTF_ONEDNN_FUSION=0', () => {
    if (runtime.torchVersion.startsWith('1.')) assert.equal(runtime.winograd, false);
    process.env.LTF_ONEDNN_FUSION = '0';
    try {
      assert.equal(Extractor.runtime().winograd, false);
    } finally {
      delete process.env.LTF_ONEDNN_FUSION;
    }
  });

  it('bfloat16, or float32 without optimize: nothing on it', () => {
    const plain = new Extractor(RESNET18, 'layer2', { device: 'cpu' });
    plain.extractSync(batch4);
    assert.deepEqual(plain.onednn, ZERO);
    const bf16 = new Extractor(RESNET18, 'layer2', { device: 'cpu', dtype: 'bfloat16', channelsLast: true, optimize: true });
    bf16.extractSync(batch4);
    assert.equal(bf16.onednn.winograd, 0);
    plain.dispose();
    bf16.dispose();
  });
});

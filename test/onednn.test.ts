/**
 * optimize's oneDNN rewrite on the CPU (native/onednn/onednn_conv.h): convolutions with their activation
 * and residual addition fused, Winograd for 3x3 stride-1 ones. Every result against PyTorch's.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

import { Extractor } from '../lib';
import { CPU_TOLERANCE, RESNET18, assertClose, expectError, fixture, manifest, readTensor } from './helpers';

const available = Extractor.runtime().onednnFusion;
// CI sets LTF_EXPECT_ONEDNN: there a build that lost the rewrite fails instead of skipping.
const skip = available || process.env.LTF_EXPECT_ONEDNN ? false : 'this build has no oneDNN fusion (CMakeLists.txt, LTF_ONEDNN)';

const { cases } = manifest.resnet18;
const batch = readTensor(cases.batch4.input);

describe('oneDNN fusion of optimize on the CPU', { skip }, () => {
  it('is in this build', () => {
    assert.equal(available, true, 'built without it: install libdnnl-dev libideep-dev and rebuild');
  });

  it('ResNet-18 at layer4: 20 convolutions, 13 with Winograd, 17 ReLUs and 8 residual additions fused, within the CPU tolerance', async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu', optimize: true });
    assert.deepEqual(ex.onednn, { convolutions: 20, winograd: 13, fusedActivations: 17, fusedResiduals: 8 });
    assertClose(ex.extractSync(batch), readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'layer4, sync');
    assertClose(await ex.extract(batch), readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'layer4, async');
    assert.equal(Object.isFrozen(ex.onednn), true);
    ex.dispose();
  });

  it('winograd: false keeps the direct algorithm everywhere, within the same tolerance', () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu', optimize: true, winograd: false });
    assert.deepEqual(ex.onednn, { convolutions: 20, winograd: 0, fusedActivations: 17, fusedResiduals: 8 });
    assertClose(ex.extractSync(batch), readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'layer4, direct');
  });

  it('every cut of every architecture within the CPU tolerance: ReLU6 (MobileNetV2), pre-activation (DenseNet-121), residuals without activation (EfficientNet-B0)', () => {
    for (const arch of [manifest.mobilenet_v2, manifest.densenet121, manifest.efficientnet_b0]) {
      const input = readTensor(arch.input);
      for (const [layer, expected] of Object.entries(arch.outputs)) {
        const ex = new Extractor(fixture(arch.file), layer, { device: 'cpu', optimize: true });
        assert.ok(ex.onednn.convolutions > 0, `${arch.file} ${layer}: no convolution rewritten`);
        assertClose(ex.extractSync(input), readTensor(expected), CPU_TOLERANCE, `${arch.file} ${layer}`);
        ex.dispose();
      }
    }
    const mobilenet = new Extractor(fixture(manifest.mobilenet_v2.file), 'features', { device: 'cpu', optimize: true });
    // The 1x1 convolutions' ReLU6 is fused; the depthwise ones keep LibTorch's kernels.
    assert.deepEqual(mobilenet.onednn, { convolutions: 35, winograd: 0, fusedActivations: 18, fusedResiduals: 0 });
    const efficientnet = new Extractor(fixture(manifest.efficientnet_b0.file), 'features', { device: 'cpu', optimize: true });
    assert.equal(efficientnet.onednn.fusedResiduals, 9);
  });

  it('a residual that broadcasts ([N, C, 1, 1]) is added by LibTorch after the convolution', () => {
    const { file, input, outputs } = manifest.broadcastResidual;
    const ex = new Extractor(fixture(file), 'act', { device: 'cpu', optimize: true });
    assert.deepEqual(ex.onednn, { convolutions: 2, winograd: 1, fusedActivations: 1, fusedResiduals: 1 });
    assertClose(ex.extractSync(readTensor(input)), readTensor(outputs.act), CPU_TOLERANCE, 'broadcast residual');
  });

  it('input shapes changing on one extractor: each gets its own primitives, older ones are dropped, results stay right', () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu', optimize: true });
    const nonsquare = readTensor(cases.nonsquare.input);
    assertClose(ex.extractSync(batch), readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'first shape');
    assertClose(ex.extractSync(nonsquare), readTensor(cases.nonsquare.outputs.layer4), CPU_TOLERANCE, 'second shape');
    // More shapes than each convolution keeps primitives for (8), then the first two again.
    for (let side = 64; side < 64 + 9 * 8; side += 8) {
      const out = ex.extractSync({ data: new Float32Array(3 * side * side), shape: [1, 3, side, side] });
      assert.equal(out.shape[1], 512);
    }
    assertClose(ex.extractSync(batch), readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'first shape again');
    assertClose(ex.extractSync(nonsquare), readTensor(cases.nonsquare.outputs.layer4), CPU_TOLERANCE, 'second shape again');
  });

  it("LTF_ONEDNN_FUSION=0 leaves the graph to LibTorch's own passes, still within the tolerance", () => {
    process.env.LTF_ONEDNN_FUSION = '0';
    try {
      const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu', optimize: true });
      assert.deepEqual(ex.onednn, { convolutions: 0, winograd: 0, fusedActivations: 0, fusedResiduals: 0 });
      assertClose(ex.extractSync(batch), readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'LibTorch passes');
    } finally {
      delete process.env.LTF_ONEDNN_FUSION;
    }
    assert.equal(new Extractor(RESNET18, 'layer2', { device: 'cpu', optimize: true }).onednn.convolutions, 10);
  });

  it('on other CPUs (oneDNN held to AVX2, or to AVX): 8-channel blocks and no Winograd within the tolerance, or no rewrite', () => {
    // oneDNN reads ONEDNN_MAX_CPU_ISA once, at start: each case runs in a process of its own.
    const script = `
      const { Extractor } = require(${JSON.stringify(require.resolve('../lib'))});
      const h = require(${JSON.stringify(require.resolve('./helpers'))});
      const ex = new Extractor(h.RESNET18, 'layer4', { device: 'cpu', optimize: true });
      const c = h.manifest.resnet18.cases.batch4;
      const out = ex.extractSync(h.readTensor(c.input));
      const ref = h.readTensor(c.outputs.layer4);
      console.log(JSON.stringify({ onednn: ex.onednn, fusion: Extractor.runtime().onednnFusion,
        diff: h.maxAbsDiff(out.data, ref.data), limit: h.CPU_TOLERANCE * Math.max(1, h.maxAbs(ref.data)) }));`;
    for (const [isa, convolutions] of [
      ['AVX2', 20],
      ['AVX', 0],
    ] as const) {
      const run = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ONEDNN_MAX_CPU_ISA: isa }, encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      const result = JSON.parse(run.stdout);
      assert.equal(result.onednn.convolutions, convolutions, isa);
      assert.equal(result.fusion, convolutions > 0, isa);
      assert.ok(result.diff <= result.limit, `${isa}: ${result.diff} > ${result.limit}`);
    }
  });

  it("an input with the wrong channel count: FORWARD_FAILED in LibTorch's words, the extractor still usable", async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu', optimize: true });
    const wrong = { data: new Float32Array(4 * 64 * 64), shape: [1, 4, 64, 64] };
    const message = /expected input\[1, 4, 64, 64\] to have 3 channels, but got 4 channels instead/;
    assert.throws(() => ex.extractSync(wrong), expectError('FORWARD_FAILED', message));
    await assert.rejects(ex.extract(wrong), expectError('FORWARD_FAILED', message));
    assertClose(ex.extractSync(batch), readTensor(cases.batch4.outputs.layer4), CPU_TOLERANCE, 'after the error');
  });

  it('does nothing without optimize, and outside float32', () => {
    const zero = { convolutions: 0, winograd: 0, fusedActivations: 0, fusedResiduals: 0 };
    assert.deepEqual(new Extractor(RESNET18, 'layer4', { device: 'cpu' }).onednn, zero);
    assert.deepEqual(new Extractor(RESNET18, 'layer3.1.conv2', { device: 'cpu' }).onednn, zero);
    assert.deepEqual(new Extractor(RESNET18, 'layer2', { device: 'cpu', optimize: true, dtype: 'bfloat16' }).onednn, zero);
  });
});

describe('winograd option', () => {
  it('must be a boolean', () => {
    for (const winograd of ['yes', 1, null]) {
      assert.throws(() => new Extractor(RESNET18, 'layer4', { winograd: winograd as never }), expectError('INVALID_ARGUMENT', /winograd/));
    }
  });
});

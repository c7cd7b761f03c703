/** Features match PyTorch's own: forward hooks on the original model (scripts/make-fixtures.py). */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ndarray = require('ndarray');

import { Extractor, FeatureTensor } from '../lib';
import { CHAIN, CPU_TOLERANCE, RESNET18, assertClose, manifest, readTensor } from './helpers';

const { cases, chainLayers, parameterCounts } = manifest.resnet18;

describe('ResNet-18 cut at every top-level child, CPU, against PyTorch hooks', () => {
  const batch = readTensor(cases.batch4.input);
  const nonsquare = readTensor(cases.nonsquare.input);

  for (const layer of chainLayers) {
    it(`${layer}: batch of 4 at 224x224 and one 160x200 image`, () => {
      const ex = new Extractor(RESNET18, layer, { device: 'cpu' });
      try {
        assertClose(ex.extractSync(batch), readTensor(cases.batch4.outputs[layer]), CPU_TOLERANCE, `${layer} batch4`);
        assertClose(ex.extractSync(nonsquare), readTensor(cases.nonsquare.outputs[layer]), CPU_TOLERANCE, `${layer} 160x200`);
        assert.equal(ex.parameterCount, parameterCounts[layer]);
      } finally {
        ex.dispose();
      }
    });
  }

  it('layer4 gives [N, 512, 7, 7] on 224x224 and keeps 11,176,512 parameters', async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    const out = await ex.extract(batch);
    assert.ok(out instanceof FeatureTensor);
    assert.deepEqual(out.shape, [4, 512, 7, 7]);
    assert.ok(out.data instanceof Float32Array);
    assert.equal(out.data.length, 4 * 512 * 7 * 7);
    assert.equal(ex.parameterCount, 11_176_512);
    assert.deepEqual(ex.keptLayers, ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4']);
    ex.dispose();
  });

  it('layer2 keeps 683,072 parameters', () => {
    const ex = new Extractor(RESNET18, 'layer2', { device: 'cpu' });
    assert.equal(ex.parameterCount, 683_072);
    ex.dispose();
  });

  it('extract() (worker thread) equals extractSync() and PyTorch', async () => {
    const ex = new Extractor(RESNET18, 'layer3', { device: 'cpu' });
    const [a, b] = await Promise.all([ex.extract(batch), ex.extract(nonsquare)]);
    const sync = ex.extractSync(batch);
    assert.deepEqual(a.data, sync.data);
    assertClose(a, readTensor(cases.batch4.outputs.layer3), CPU_TOLERANCE, 'async layer3');
    assertClose(b, readTensor(cases.nonsquare.outputs.layer3), CPU_TOLERANCE, 'async layer3 160x200');
    ex.dispose();
  });

  it('a batch of one equals that image inside the batch', () => {
    const ex = new Extractor(RESNET18, 'layer1', { device: 'cpu' });
    const per = batch.data.length / 4;
    const second = { data: batch.data.slice(per, 2 * per), shape: [1, 3, 224, 224] };
    const out = ex.extractSync(second);
    const expected = readTensor(cases.batch4.outputs.layer1);
    const slice = expected.data.length / 4;
    assertClose(
      out,
      { data: expected.data.slice(slice, 2 * slice), shape: [1, ...expected.shape.slice(1)] },
      CPU_TOLERANCE,
      'image 2 of 4',
    );
    ex.dispose();
  });
});

describe('ndarray in and out', () => {
  const batch = readTensor(manifest.resnet18.cases.batch4.input);

  it('takes an ndarray and gives one back (a view, no copy)', async () => {
    const ex = new Extractor(RESNET18, 'maxpool', { device: 'cpu' });
    const out = await ex.extract(ndarray(batch.data, batch.shape));
    assertClose(out, readTensor(cases.batch4.outputs.maxpool), CPU_TOLERANCE, 'ndarray input');
    const nd = out.toNdarray();
    assert.deepEqual(nd.shape, [4, 64, 56, 56]);
    assert.equal(nd.data, out.data);
    assert.equal(nd.get(1, 2, 3, 4), out.data[((1 * 64 + 2) * 56 + 3) * 56 + 4]);
    ex.dispose();
  });

  it('packs a strided ndarray view (a slice of the batch) before running it', () => {
    const ex = new Extractor(RESNET18, 'conv1', { device: 'cpu' });
    // Images 1 and 3 of the batch, every channel: a non-contiguous view with an offset.
    const view = ndarray(batch.data, batch.shape).lo(1, 0, 0, 0).step(2, 1, 1, 1);
    assert.deepEqual(view.shape, [2, 3, 224, 224]);
    const out = ex.extractSync(view);
    const expected = readTensor(cases.batch4.outputs.conv1);
    const per = expected.data.length / 4;
    const rows = new Float32Array(2 * per);
    rows.set(expected.data.subarray(per, 2 * per), 0);
    rows.set(expected.data.subarray(3 * per, 4 * per), per);
    assertClose(out, { data: rows, shape: [2, 64, 112, 112] }, CPU_TOLERANCE, 'strided view');
    ex.dispose();
  });
});

describe('a model whose forward calls its children in another order than they are registered', () => {
  const input = readTensor(manifest.chain.input);

  for (const layer of manifest.chain.callOrder) {
    it(`${layer}: follows the forward's call order and matches PyTorch`, () => {
      const ex = new Extractor(CHAIN, layer, { device: 'cpu' });
      const order = manifest.chain.callOrder;
      assert.deepEqual(ex.keptLayers, order.slice(0, order.indexOf(layer) + 1));
      assertClose(ex.extractSync(input), readTensor(manifest.chain.outputs[layer]), CPU_TOLERANCE, layer);
      ex.dispose();
    });
  }
});

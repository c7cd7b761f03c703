/** Loading, listing, async creation and disposal. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';

import { Extractor } from '../lib';
import { RESNET18, manifest } from './helpers';

describe('listing layers', () => {
  it('Extractor.listLayers gives the top-level children in order, with types, as named_children() does', () => {
    const layers = Extractor.listLayers(RESNET18);
    assert.deepEqual(
      layers,
      manifest.resnet18.layers.map((layer, index) => ({ index, ...layer, kind: 'module' })),
    );
    assert.deepEqual(layers[0], { index: 0, name: 'conv1', type: 'Conv2d', kind: 'module' });
    assert.deepEqual(layers[9], { index: 9, name: 'fc', type: 'Linear', kind: 'module' });
  });

  it('ex.layers lists every child, the ones cut away too', () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    assert.deepEqual(ex.layers, Extractor.listLayers(RESNET18));
    assert.equal(ex.layer, 'layer4');
    ex.dispose();
  });
});

describe('creating', () => {
  it("picks the CPU by default when there is no CUDA, and reports 'cpu'", () => {
    const ex = new Extractor(RESNET18, 'layer1');
    assert.equal(ex.device, Extractor.runtime().cudaAvailable ? 'cuda:0' : 'cpu');
    ex.dispose();
  });

  it('Extractor.create loads on a worker thread and gives an equal extractor', async () => {
    const created = await Extractor.create(RESNET18, 'layer2', { device: 'cpu' });
    const built = new Extractor(RESNET18, 'layer2', { device: 'cpu' });
    assert.equal(created.parameterCount, built.parameterCount);
    assert.deepEqual(created.keptLayers, built.keptLayers);
    const input = { data: new Float32Array(3 * 64 * 64).map((_, i) => Math.sin(i)), shape: [1, 3, 64, 64] };
    assert.deepEqual((await created.extract(input)).data, built.extractSync(input).data);
    created.dispose();
    built.dispose();
  });

  it('several extractors of one model live side by side', async () => {
    const all = await Promise.all(['conv1', 'layer1', 'layer4'].map((layer) => Extractor.create(RESNET18, layer, { device: 'cpu' })));
    assert.deepEqual(
      all.map((ex) => ex.layer),
      ['conv1', 'layer1', 'layer4'],
    );
    all.forEach((ex) => ex.dispose());
  });
});

describe('memory', () => {
  it('the children cut away are released: extractors at conv1 do not each hold the whole model', () => {
    const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
    const modelMiB = fs.statSync(RESNET18).size / 2 ** 20;
    const kept: Extractor[] = [];
    // Warm-up: the allocator keeps some freed memory the first times a model is loaded.
    for (let i = 0; i < 8; i++) kept.push(new Extractor(RESNET18, 'conv1', { device: 'cpu' }));
    const before = rssMiB();
    for (let i = 0; i < 8; i++) kept.push(new Extractor(RESNET18, 'conv1', { device: 'cpu' }));
    const growth = rssMiB() - before;
    kept.forEach((ex) => ex.dispose());
    // Retaining the parent would cost 8 x ~45 MiB here; a conv1 cut keeps 9,408 parameters.
    assert.ok(growth < 2 * modelMiB, `8 conv1 extractors grew RSS by ${growth.toFixed(1)} MiB`);
  });
});

describe('disposing', () => {
  it('[Symbol.dispose] disposes', () => {
    const ex = new Extractor(RESNET18, 'conv1', { device: 'cpu' });
    ex[Symbol.dispose]();
    assert.equal(ex.disposed, true);
  });

  it('dispose() while extractions run: they finish with correct results', async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    const input = { data: new Float32Array(2 * 3 * 224 * 224).fill(0.5), shape: [2, 3, 224, 224] };
    const expected = ex.extractSync(input);
    const pending = [ex.extract(input), ex.extract(input)];
    ex.dispose();
    for (const out of await Promise.all(pending)) assert.deepEqual(out.data, expected.data);
  });

  it('the caller may change its input as soon as extract() returns', async () => {
    const ex = new Extractor(RESNET18, 'layer1', { device: 'cpu' });
    const data = new Float32Array(3 * 64 * 64).map((_, i) => Math.cos(i));
    const expected = ex.extractSync({ data, shape: [1, 3, 64, 64] });
    const pending = ex.extract({ data, shape: [1, 3, 64, 64] });
    data.fill(100);
    assert.deepEqual((await pending).data, expected.data);
    ex.dispose();
  });
});

/**
 * Exact cuts anywhere: what each module outputs inside the model's own forward, as forward hooks
 * on the original eager PyTorch model record it (scripts/make-fixtures.py), for top-level and
 * nested names, on three torchvision architectures and a hand-written model.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Extractor, type FeatureTensor } from '../lib';
import { CHAIN, CPU_TOLERANCE, RESNET18, type Architecture, assertClose, fixture, manifest, readTensor } from './helpers';

const resnet = manifest.resnet18;
const batch = readTensor(resnet.cases.batch4.input);

describe('ResNet-18: cuts the forward does not reach through a chain of children', () => {
  it("'fc' equals the model's own output (the flatten before fc is kept)", () => {
    const ex = new Extractor(RESNET18, 'fc', { device: 'cpu' });
    assert.equal(ex.strategy, 'graph');
    assertClose(ex.extractSync(batch), readTensor(resnet.cases.batch4.modelOutput), CPU_TOLERANCE, 'fc');
    assert.equal(ex.parameterCount, 11_689_512);
    ex.dispose();
  });

  for (const name of resnet.nested) {
    it(`'${name}' matches PyTorch's hook on that call`, () => {
      const ex = new Extractor(RESNET18, name, { device: 'cpu' });
      assertClose(ex.extractSync(batch), readTensor(resnet.cases.batch4.outputs[name]), CPU_TOLERANCE, name);
      const nonsquare = readTensor(resnet.cases.nonsquare.input);
      assertClose(ex.extractSync(nonsquare), readTensor(resnet.cases.nonsquare.outputs[name]), CPU_TOLERANCE, `${name} 160x200`);
      ex.dispose();
    });
  }

  it("BasicBlock's relu, called twice, is 'layer1.0.relu' then 'layer1.0.relu_1', and they differ", () => {
    const first = new Extractor(RESNET18, 'layer1.0.relu', { device: 'cpu' }).extractSync(batch);
    const second = new Extractor(RESNET18, 'layer1.0.relu_1', { device: 'cpu' }).extractSync(batch);
    assert.notDeepEqual(first.data, second.data);
  });

  it('keeps only what the cut needs: parameters of the calls on the way, nothing after', () => {
    const cases: [string, number][] = [
      // conv1 + bn1 of the stem, and of layer1.0
      ['layer1.0.relu', 9408 + 128 + 36864 + 128],
      // everything up to layer3, but layer3.1.bn2 (2 x 256)
      ['layer3.1.conv2', resnet.parameterCounts.layer3 - 512],
      // the stem, layer1, and the 1x1 convolution of layer2.0's downsample alone
      ['layer2.0.downsample.0', resnet.parameterCounts.layer1 + 64 * 128],
    ];
    for (const [name, count] of cases) {
      const ex = new Extractor(RESNET18, name, { device: 'cpu' });
      assert.equal(ex.parameterCount, count, name);
      ex.dispose();
    }
  });
});

describe('several layers in one pass', () => {
  it('a list gives a record equal to separate cuts, and keeps only what the deepest needs', async () => {
    const ex = new Extractor(RESNET18, ['layer2', 'layer4'], { device: 'cpu' });
    assert.equal(ex.parameterCount, 11_176_512);
    const out = await ex.extract(batch);
    assert.deepEqual(Object.keys(out), ['layer2', 'layer4']);
    assertClose(out.layer2, readTensor(resnet.cases.batch4.outputs.layer2), CPU_TOLERANCE, 'layer2');
    assertClose(out.layer4, readTensor(resnet.cases.batch4.outputs.layer4), CPU_TOLERANCE, 'layer4');
    const alone = new Extractor(RESNET18, 'layer2', { device: 'cpu' }).extractSync(batch);
    assert.deepEqual(out.layer2.data, alone.data);
    ex.dispose();
  });

  it('a record renames, like IntermediateLayerGetter; a value the model changes in place later stays as it was', () => {
    // layer1.0.bn2's output is changed in place by `out += identity` inside the same block.
    const ex = new Extractor(RESNET18, { 'layer1.0.bn2': 'beforeAdd', layer1: 'block', fc: 'logits' }, { device: 'cpu' });
    const out = ex.extractSync(batch);
    assert.deepEqual(Object.keys(out).sort(), ['beforeAdd', 'block', 'logits']);
    assertClose(out.beforeAdd, readTensor(resnet.cases.batch4.outputs['layer1.0.bn2']), CPU_TOLERANCE, 'layer1.0.bn2');
    assertClose(out.block, readTensor(resnet.cases.batch4.outputs.layer1), CPU_TOLERANCE, 'layer1');
    assertClose(out.logits, readTensor(resnet.cases.batch4.modelOutput), CPU_TOLERANCE, 'fc');
    assert.deepEqual(ex.outputNames, ['beforeAdd', 'block', 'logits']);
    ex.dispose();
  });
});

function checkArchitecture(name: 'mobilenet_v2' | 'densenet121' | 'efficientnet_b0') {
  const arch: Architecture = manifest[name];
  const input = readTensor(arch.input);
  describe(`${name}: every top-level child and nested names, against PyTorch hooks`, () => {
    for (const layer of [...arch.layers.map((l) => l.name), ...arch.nested]) {
      it(layer, () => {
        const ex = new Extractor(fixture(arch.file), layer, { device: 'cpu' });
        assertClose(ex.extractSync(input), readTensor(arch.outputs[layer]), CPU_TOLERANCE, layer);
        if (arch.layers.some((l) => l.name === layer) && ex.strategy === 'sequential') {
          assert.equal(ex.parameterCount, arch.parameterCounts[layer]);
        }
        ex.dispose();
      });
    }

    it("the last top-level child equals the model's output", () => {
      const last = arch.layers[arch.layers.length - 1].name;
      const out = new Extractor(fixture(arch.file), last, { device: 'cpu' }).extractSync(input) as FeatureTensor;
      assertClose(out, readTensor(arch.modelOutput), CPU_TOLERANCE, last);
    });
  });
}
checkArchitecture('mobilenet_v2');
checkArchitecture('densenet121');
checkArchitecture('efficientnet_b0');

describe('nested names are those of torchvision', () => {
  for (const name of ['resnet18', 'mobilenet_v2', 'densenet121', 'efficientnet_b0'] as const) {
    it(`${name}: every leaf-module call get_graph_node_names lists, with its _N suffix, can be cut at`, () => {
      const file = name === 'resnet18' ? RESNET18 : fixture(manifest[name].file);
      const layers = Extractor.listLayers(file, { nested: true });
      const names = new Set(layers.map((layer) => layer.name));
      const leafCalls = manifest[name].leafCalls;
      assert.ok(leafCalls.length >= 10);
      assert.deepEqual(
        leafCalls.filter((call) => !names.has(call)),
        [],
      );
    });
  }

  it('containers come before what they hold, in the order the forward runs them', () => {
    const layers = Extractor.listLayers(RESNET18, { nested: true });
    assert.deepEqual(
      layers.slice(0, 8).map((l) => `${l.index} ${l.name} ${l.type}`),
      [
        '0 x x',
        '1 conv1 Conv2d',
        '2 bn1 BatchNorm2d',
        '3 relu ReLU',
        '4 maxpool MaxPool2d',
        '5 layer1 Sequential',
        '6 layer1.0 BasicBlock',
        '7 layer1.0.conv1 Conv2d',
      ],
    );
    // BasicBlock calls its relu twice; the downsample runs after bn2.
    const names = layers.map((l) => l.name);
    assert.ok(names.indexOf('layer1.0.relu_1') > names.indexOf('layer1.0.bn2'));
    // `out += identity` between them, a function node under torchvision's name.
    assert.ok(names.indexOf('layer1.0.add') === names.indexOf('layer1.0.relu_1') - 1);
    assert.ok(names.indexOf('layer2.0.downsample') > names.indexOf('layer2.0.bn2'));
  });
});

describe('a hand-written model whose forward is not a chain', () => {
  const input = readTensor(manifest.chain.input);
  it("'extra', after a skip connection (x + body(x)), is cut in the graph and matches PyTorch", () => {
    const ex = new Extractor(CHAIN, 'extra', { device: 'cpu' });
    assert.equal(ex.strategy, 'graph');
    assertClose(ex.extractSync(input), readTensor(manifest.chain.outputs.extra), CPU_TOLERANCE, 'extra');
  });

  it('children called in another order than registered are cut as a chain, in call order', () => {
    const ex = new Extractor(CHAIN, 'body', { device: 'cpu' });
    assert.equal(ex.strategy, 'sequential');
    assert.deepEqual(ex.keptLayers, ['tail', 'head', 'body']);
  });

  it('all four at once equal the separate cuts', () => {
    const out = new Extractor(CHAIN, ['tail', 'head', 'body', 'extra'], { device: 'cpu' }).extractSync(input);
    for (const layer of ['tail', 'head', 'body', 'extra'] as const) {
      assertClose(out[layer], readTensor(manifest.chain.outputs[layer]), CPU_TOLERANCE, layer);
    }
  });
});

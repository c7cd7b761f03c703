/**
 * The zoo (issue 14): for 15 torchvision architectures (and a hand-written model of operators), every node torchvision's
 * get_graph_node_names lists (modules, functions, operators, parameters, the input) can be cut at
 * under torchvision's name, and gives what PyTorch computed at that node inside the model's own
 * forward (scripts/make-zoo-fixtures.py: an fx Interpreter that clones each output when computed).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { Extractor, type LayerKind } from '../lib';
import { CPU_TOLERANCE, FIXTURES, type TensorFile, assertClose, expectError, readTensor } from './helpers';

interface ZooNode {
  name: string;
  op: 'placeholder' | 'call_module' | 'call_function' | 'call_method' | 'get_attr';
  tensor: boolean;
  output: TensorFile | null;
}
interface ZooArchitecture {
  file: string;
  input: TensorFile;
  nodes: ZooNode[];
}

const ZOO = path.join(FIXTURES, 'zoo');
const zoo: { torch: string; torchvision: string; architectures: Record<string, ZooArchitecture>; loop: { file: string } } = JSON.parse(
  fs.readFileSync(path.join(ZOO, 'manifest.json'), 'utf8'),
);
const zooTensor = (file: TensorFile) => readTensor({ ...file, file: path.join('zoo', file.file) });
const model = (arch: string) => path.join(ZOO, zoo.architectures[arch].file);

const KIND: Record<ZooNode['op'], LayerKind> = {
  placeholder: 'input',
  call_module: 'module',
  call_function: 'function',
  call_method: 'function',
  get_attr: 'parameter',
};

/** "176 tensor nodes (158 module, 17 function, 1 input)" */
function describeNodes(nodes: ZooNode[]): string {
  const counts = new Map<LayerKind, number>();
  for (const node of nodes) counts.set(KIND[node.op], (counts.get(KIND[node.op]) ?? 0) + 1);
  return `${nodes.length} tensor nodes (${[...counts].map(([kind, n]) => `${n} ${kind}`).join(', ')})`;
}

/** A few nodes of each kind but modules, spread over the forward: first, middle, last. */
function sample(nodes: ZooNode[]): ZooNode[] {
  const picked = new Set<ZooNode>();
  for (const kind of ['function', 'parameter', 'input'] as LayerKind[]) {
    const of = nodes.filter((node) => KIND[node.op] === kind);
    for (const i of [0, Math.floor(of.length / 2), of.length - 1]) if (of[i]) picked.add(of[i]);
  }
  return [...picked];
}

describe(`the zoo: every node torchvision ${zoo.torchvision} lists, on the CPU`, () => {
  for (const [arch, architecture] of Object.entries(zoo.architectures)) {
    const tensors = architecture.nodes.filter((node) => node.tensor);
    const input = zooTensor(architecture.input);

    describe(arch, () => {
      it(`listLayers({ nested: true }) lists torchvision's ${describeNodes(tensors)} under its names, in its order, with their kind; nothing it does not list but module calls`, () => {
        const listed = Extractor.listLayers(model(arch), { nested: true });
        const byName = new Map(listed.map((layer) => [layer.name, layer]));
        for (const node of tensors) {
          assert.ok(byName.has(node.name), `${node.name} (${node.op}) is not listed`);
          assert.equal(byName.get(node.name)?.kind, KIND[node.op], `${node.name}: kind`);
        }
        const tensorNames = new Set(tensors.map((node) => node.name));
        const everyName = new Set(architecture.nodes.map((node) => node.name));
        // Nodes that yield no tensor (x.size(), a tuple) are not offered; module calls may be
        // more than torchvision's (containers, modules inside the ones fx keeps whole).
        for (const node of architecture.nodes.filter((n) => !n.tensor)) {
          assert.ok(!byName.has(node.name), `${node.name} yields no tensor but is listed`);
        }
        const invented = listed.filter((layer) => layer.kind !== 'module' && !everyName.has(layer.name));
        assert.deepEqual(invented, [], 'functions or parameters torchvision does not list');
        const order = listed.map((layer) => layer.name).filter((name) => tensorNames.has(name));
        assert.deepEqual(order, [...tensorNames], 'order');
      });

      it(`all ${tensors.length} at once match PyTorch within ${CPU_TOLERANCE} x max(1, max|ref|), in-place changes after a node included`, async () => {
        const ex = await Extractor.create(
          model(arch),
          tensors.map((node) => node.name),
          { device: 'cpu' },
        );
        const features = await ex.extract(input);
        for (const node of tensors) {
          assertClose(features[node.name], zooTensor(node.output as TensorFile), CPU_TOLERANCE, `${arch} ${node.name}`);
        }
        ex.dispose();
      });

      const alone = sample(tensors);
      it(`each of ${alone.length} functions, parameters and the input alone matches PyTorch (${alone
        .map((node) => node.name)
        .join(', ')})`, async () => {
        for (const node of alone) {
          const ex = await Extractor.create(model(arch), node.name, { device: 'cpu' });
          assertClose(await ex.extract(input), zooTensor(node.output as TensorFile), CPU_TOLERANCE, `${arch} ${node.name}`);
          ex.dispose();
        }
      });
    });
  }
});

describe('the zoo: how TorchScript nodes map to torchvision names', () => {
  // One case of each difference between TorchScript's graph and fx's trace (README, "Nodes").
  const cases: [string, string, LayerKind, string, string][] = [
    ['resnet50', 'layer1.0.add', 'function', 'add', '`out += identity`: aten::add_ in TorchScript, operator.add in fx'],
    ['googlenet', 'conv1.relu', 'function', 'relu', '`F.relu(x, inplace=True)`: one call of torch.nn.functional'],
    ['mnasnet0_5', 'mean', 'function', 'mean', '`x.mean([2, 3])`: a method'],
    [
      'vit_b_16',
      'encoder.layers.encoder_layer_0.getitem',
      'function',
      'getitem',
      "`x, _ = self.self_attention(...)`: a tuple's first element",
    ],
    ['vit_b_16', 'getitem_5', 'function', 'getitem', '`x[:, 0]`: aten::slice then aten::select, one getitem'],
    ['shufflenet_v2_x0_5', 'stage2.1.getitem_1', 'function', 'getitem', '`x1, x2 = x.chunk(2, dim=1)`: prim::ConstantChunk'],
    ['shufflenet_v2_x0_5', 'stage2.0.view_1', 'function', 'view', 'channel_shuffle: a helper function fx traces through'],
    ['inception_v3', 'Mixed_6a.max_pool2d', 'function', 'max_pool2d', '`F.max_pool2d`: TorchScript calls _max_pool2d'],
    ['convnext_tiny', 'features.1.0.features_1_0_layer_scale', 'parameter', 'Parameter', 'a parameter the forward reads: fx get_attr'],
    [
      'swin_t',
      'features.1.0.attn.shifted_window_attention',
      'function',
      'shifted_window_attention',
      'a function torchvision wraps with torch.fx.wrap',
    ],
    ['vit_b_16', 'encoder.layers.encoder_layer_0.ln', 'module', 'LayerNorm', "module ln_1: torchvision drops the _1 of a module's name"],
    ['vit_b_16', 'encoder.layers.encoder_layer_0.ln_1', 'module', 'LayerNorm', 'module ln_2, then numbered as the second ln'],
    ['resnet50', 'x', 'input', 'x', "the forward's argument"],
    ['operators', 'truediv', 'function', 'truediv', '`x / 2`: aten::div, operator.truediv in fx'],
    ['operators', 'div', 'function', 'div', '`torch.div(a, 3)`: the function keeps its name'],
    ['operators', 'floordiv', 'function', 'floordiv', '`b // 0.5`: aten::floor_divide'],
    ['operators', 'mod', 'function', 'mod', '`c % 3`: aten::remainder'],
    ['operators', 'mul_', 'function', 'mul_', '`d.mul_(2)`: an in-place method keeps its underscore'],
    ['operators', 'add', 'function', 'add', '`d += a`: aten::add_, operator.add in fx'],
    ['operators', 'getitem', 'function', 'getitem', '`d[:, 1:3]`: two aten::slice, one getitem'],
  ];
  for (const [arch, name, kind, type, why] of cases) {
    it(`${arch} '${name}' is a ${kind} (${type}): ${why}`, () => {
      const layer = Extractor.listLayers(model(arch), { nested: true }).find((l) => l.name === name);
      assert.ok(layer, `${name} is listed`);
      assert.equal(layer.kind, kind);
      assert.equal(layer.type, type);
      assert.ok(
        zoo.architectures[arch].nodes.some((node) => node.name === name && node.tensor),
        'torchvision lists it',
      );
    });
  }

  it("a module path that torchvision gives to another node means torchvision's node; the module ln_2 is still reachable by its path", async () => {
    const block = 'encoder.layers.encoder_layer_0';
    const nodes = zoo.architectures.vit_b_16.nodes;
    const ex = await Extractor.create(model('vit_b_16'), [`${block}.ln`, `${block}.ln_1`, `${block}.ln_2`], { device: 'cpu' });
    const features = await ex.extract(zooTensor(zoo.architectures.vit_b_16.input));
    const reference = (name: string) => zooTensor(nodes.find((node) => node.name === name)?.output as TensorFile);
    assertClose(features[`${block}.ln`], reference(`${block}.ln`), CPU_TOLERANCE, 'ln (module ln_1)');
    assertClose(features[`${block}.ln_1`], reference(`${block}.ln_1`), CPU_TOLERANCE, 'ln_1 (module ln_2)');
    assertClose(features[`${block}.ln_2`], reference(`${block}.ln_1`), CPU_TOLERANCE, 'ln_2 (module ln_2, by path)');
    ex.dispose();
  });
});

describe('the zoo: functions with the rest of the API', () => {
  const resnet = zoo.architectures.resnet50;
  const ref = (arch: ZooArchitecture, name: string) => zooTensor(arch.nodes.find((node) => node.name === name)?.output as TensorFile);

  it('renamed: a record of torchvision names to names of your own, modules and functions together', async () => {
    const ex = await Extractor.create(
      model('resnet50'),
      { 'layer1.0.add': 'residual', flatten: 'embedding', 'layer1.0.bn3': 'bn3' },
      { device: 'cpu' },
    );
    const features = await ex.extract(zooTensor(resnet.input));
    assert.deepEqual(Object.keys(features).sort(), ['bn3', 'embedding', 'residual']);
    assertClose(features.residual, ref(resnet, 'layer1.0.add'), CPU_TOLERANCE, 'residual');
    assertClose(features.embedding, ref(resnet, 'flatten'), CPU_TOLERANCE, 'embedding');
    assertClose(features.bn3, ref(resnet, 'layer1.0.bn3'), CPU_TOLERANCE, 'bn3 (changed in place by the add after it)');
    ex.dispose();
  });

  for (const [arch, names] of [
    ['resnet50', ['layer1.0.add', 'layer3.5.add', 'flatten']],
    ['convnext_tiny', ['features.1.0.mul', 'features.2.0.layer_norm', 'features.5.3.add']],
    ['swin_t', ['features.2._patch_merging_pad', 'features.3.1.add_1']],
  ] as const) {
    it(`optimize: ${arch} at ${names.join(', ')} matches PyTorch`, async () => {
      const ex = await Extractor.create(model(arch), [...names], { device: 'cpu', optimize: true });
      const features = await ex.extract(zooTensor(zoo.architectures[arch].input));
      for (const name of names) {
        assertClose(features[name], ref(zoo.architectures[arch], name), CPU_TOLERANCE, `${arch} ${name} optimized`);
      }
      ex.dispose();
    });
  }

  it('a module inside one fx keeps whole is cut at by its path: the ReLU ending a Conv2dNormActivation gives that block', async () => {
    const mobilenet = zoo.architectures.mobilenet_v3_small;
    const names = Extractor.listLayers(model('mobilenet_v3_small'), { nested: true }).map((layer) => layer.name);
    assert.ok(!mobilenet.nodes.some((node) => node.name === 'features.1.block.0.2'), 'torchvision does not list it');
    assert.ok(names.includes('features.1.block.0.2'));
    const ex = await Extractor.create(model('mobilenet_v3_small'), 'features.1.block.0.2', { device: 'cpu' });
    assertClose(await ex.extract(zooTensor(mobilenet.input)), ref(mobilenet, 'features.1.block.0'), CPU_TOLERANCE, 'features.1.block.0.2');
    ex.dispose();
  });

  it("a parameter or other input-free node is every caller's whole, never a share of merged rows", async () => {
    const convnext = zoo.architectures.convnext_tiny;
    const scale = 'features.1.0.features_1_0_layer_scale';
    const ex = await Extractor.create(model('convnext_tiny'), [scale, 'features.1.0.mul'], { device: 'cpu', maxBatch: 8 });
    const both = zooTensor(convnext.input);
    const rows = both.shape[0];
    const per = both.data.length / rows;
    const one = (i: number) => ({ data: both.data.slice(i * per, (i + 1) * per), shape: [1, ...both.shape.slice(1)] });
    // Called together, so that the queue runs them as one forward of two rows.
    const [first, second] = await Promise.all([ex.extract(one(0)), ex.extract(one(1))]);
    for (const result of [first, second]) assertClose(result[scale], ref(convnext, scale), 0, 'layer scale');
    const mul = ref(convnext, 'features.1.0.mul');
    const half = mul.data.length / rows;
    assertClose(second['features.1.0.mul'], { data: mul.data.slice(half), shape: [1, ...mul.shape.slice(1)] }, CPU_TOLERANCE, 'row 2');
    ex.dispose();
  });

  it('a node after an operation of the same name inside a loop TorchScript keeps is refused, saying why; the loop itself is not listed', () => {
    const loop = path.join(ZOO, zoo.loop.file);
    const names = Extractor.listLayers(loop, { nested: true }).map((layer) => layer.name);
    assert.deepEqual(names, ['x', 'conv', 'mul']);
    assert.throws(() => new Extractor(loop, 'add', { device: 'cpu' }), expectError('UNSUPPORTED_CUT', /inside an if or a loop/));
    assert.throws(() => new Extractor(loop, 'add_1', { device: 'cpu' }), expectError('LAYER_NOT_FOUND', /neither a module/));
  });
});

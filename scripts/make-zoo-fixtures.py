#!/usr/bin/python3
"""The zoo: torchvision architectures, every node torchvision's feature extraction lists, and what
PyTorch computes at each, for test/zoo.test.ts.

Run with Debian's interpreter (/usr/bin/python3); writes test/fixtures/zoo/ (or the folder given):

  <arch>.pt          the architecture, seeded, saved with torch.jit.script
  <arch>-input.f32   its input: two photos, small (any size the architecture accepts)
  <arch>-<i>.f32     what node i computes, cloned the moment it is computed
  loop.pt            a forward with a loop TorchScript keeps (test of names that cannot be known)
  manifest.json      per architecture: every node get_graph_node_names(model)[1] lists (eval
                     mode), in order, with its fx op and whether it yields a tensor

Weights are seeded (no pretrained download here) and made unlike their defaults, so that a wrong
cut cannot hide behind them: BatchNorm statistics calibrated on real photos, and every parameter
whose elements are all equal (ConvNeXt's layer scale of 1e-6, LayerNorm's ones and zeros, ViT's
zero class token and head, biases of zero) replaced by values scattered around it.

References come from torch.fx itself: the model traced with torchvision's NodePathTracer (its
names), then run by an fx Interpreter that clones each node's output when it is computed. Taking
them from create_feature_extractor instead would be wrong twice: it returns a tensor that a later
in-place operation changed (ResNet's bn3 output after `out += identity`) when several requested
nodes share it.
"""
import dis
import inspect
import json
import os
import sys

import torch
import torch.fx
import torchvision
from torchvision import transforms
from torchvision.models.feature_extraction import NodePathTracer, _set_default_tracer_kwargs

from torch_models import SEED, photos

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'zoo')
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# (architecture, constructor arguments, input side). 64 pixels wherever the architecture takes it
# (Inception-v3 needs 75); ViT is made for its input size; 10 classes keep the files small.
ZOO = [
    ('resnet50', {}, 64),
    ('resnext50_32x4d', {}, 64),
    ('mobilenet_v3_small', {}, 64),
    ('mnasnet0_5', {}, 64),
    ('shufflenet_v2_x0_5', {}, 64),
    ('squeezenet1_1', {}, 64),
    ('googlenet', {'aux_logits': False, 'init_weights': True}, 64),
    ('inception_v3', {'aux_logits': False, 'init_weights': True}, 80),
    ('regnet_y_400mf', {}, 64),
    ('efficientnet_v2_s', {}, 64),
    ('convnext_tiny', {}, 64),
    ('vit_b_16', {'image_size': 64}, 64),
    ('swin_t', {}, 64),
    ('alexnet', {}, 64),
    ('vgg11_bn', {}, 64),
    ('operators', {}, 16),  # hand-written (Operators below)
]


def fix_fx_unpacking():
    """torch 1.13's fx finds the instruction that unpacks a Proxy (`a, b = proxy`) at f_lasti // 2,
    which Python 3.11's inline caches moved, and fails to trace ViT and ShuffleNetV2. torch 2 finds
    it by its offset; the same here, where torch's own code does not."""
    if sys.version_info < (3, 11) or 'bisect_left' in inspect.getsource(torch.fx.proxy.Proxy.__iter__):
        return
    original = torch.fx.proxy.Proxy.__iter__

    def __iter__(self):
        calling_frame = inspect.currentframe().f_back
        for inst in dis.get_instructions(calling_frame.f_code):
            if inst.offset == calling_frame.f_lasti and inst.opname == 'UNPACK_SEQUENCE':
                return (self[i] for i in range(inst.argval))
        return original(self)

    torch.fx.proxy.Proxy.__iter__ = __iter__


def scatter_constants(model, generator):
    """Replaces every parameter whose elements are all equal by values scattered around it."""
    with torch.no_grad():
        for parameter in model.parameters():
            flat = parameter.flatten()
            if bool(torch.all(flat == flat[0])):
                base = float(flat[0])
                spread = max(abs(base), 0.05) * 0.5
                parameter.copy_(base + spread * torch.randn(parameter.shape, generator=generator))


def calibrate(model, side):
    """BatchNorm statistics from real photos at the zoo's input side (cumulative averages)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for module in norms:
        module.momentum = None
    augment = transforms.Compose([transforms.ToPILImage(), transforms.RandomResizedCrop(side), transforms.ToTensor(),
                                  transforms.Normalize(MEAN, STD)])
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.stack([augment(img) for img in photos() for _ in range(2)]))


class Operators(torch.nn.Module):
    """Python operators whose fx names are not their aten names (/ // %), the same operation called
    as a function, an in-place method next to an augmented assignment, and indexing."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        a = x / 2
        b = torch.div(a, 3)
        c = b // 0.5
        d = c % 3
        d.mul_(2)
        d += a
        e = d[:, 1:3]
        return torch.relu(e) - b[:, :2]


def seeded(arch, kwargs, side):
    torch.manual_seed(SEED)
    if arch == 'operators':
        return Operators().eval()
    model = getattr(torchvision.models, arch)(weights=None, num_classes=10, **kwargs)
    scatter_constants(model, torch.Generator().manual_seed(SEED))
    calibrate(model, side)
    return model.eval()


class Recorder(torch.fx.Interpreter):
    """Runs a traced graph and keeps a clone of every tensor a node yields, when it yields it."""

    def __init__(self, module, names):
        super().__init__(module)
        self.names = names
        self.values = {}

    def run_node(self, node):
        value = super().run_node(node)
        if isinstance(value, torch.Tensor) and node in self.names:  # the graph's output node has no name
            self.values[self.names[node]] = value.detach().clone()
        return value


def save(name, tensor):
    array = tensor.detach().contiguous().numpy().astype('<f4')
    array.tofile(os.path.join(OUT, name + '.f32'))
    return {'file': name + '.f32', 'shape': list(array.shape)}


def architecture(arch, kwargs, side):
    model = seeded(arch, kwargs, side)
    torch.jit.script(model).save(os.path.join(OUT, f'{arch}.pt'))
    x = torch.stack([transforms.Compose([transforms.ToPILImage(), transforms.Resize(side), transforms.CenterCrop(side),
                                         transforms.ToTensor(), transforms.Normalize(MEAN, STD)])(img)
                     for img in photos()[:2]])
    tracer = NodePathTracer(**_set_default_tracer_kwargs(None))
    graph = tracer.trace(model)
    names = dict(tracer.node_to_qualname)
    recorder = Recorder(torch.fx.GraphModule(tracer.root, graph), names)
    with torch.no_grad():
        recorder.run(x)
    nodes = []
    for i, (node, name) in enumerate(names.items()):
        value = recorder.values.get(name)
        nodes.append({'name': name, 'op': node.op, 'tensor': value is not None,
                      'output': save(f'{arch}-{i}', value) if value is not None else None})
    return {'file': f'{arch}.pt', 'input': save(f'{arch}-input', x), 'nodes': nodes}


class Loop(torch.nn.Module):
    """A forward with a loop TorchScript keeps (its trip count is the batch size): an `add` inside it,
    then another after it, which fx would number after however many the loop ran."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        for _ in range(x.size(0)):
            x = x + 1
        x = x + 2
        return x * 2


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    fix_fx_unpacking()
    manifest = {'torch': torch.__version__, 'torchvision': torchvision.__version__, 'architectures': {}}
    for arch, kwargs, side in ZOO:
        manifest['architectures'][arch] = architecture(arch, kwargs, side)
        print(f'zoo: {arch}', flush=True)
    torch.jit.script(Loop().eval()).save(os.path.join(OUT, 'loop.pt'))
    manifest['loop'] = {'file': 'loop.pt'}
    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
    print(f'zoo fixtures written to {os.path.abspath(OUT)}')


if __name__ == '__main__':
    main()

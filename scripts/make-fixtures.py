#!/usr/bin/python3
"""Test fixtures and ground truth, computed by PyTorch itself.

Run with Debian's interpreter (/usr/bin/python3: torch 1.13, torchvision 0.14); the `python3` first
on PATH may have no torch. Writes into test/fixtures/ (or the folder given):

  resnet18.pt, mobilenet_v2.pt, densenet121.pt, efficientnet_b0.pt
                     torchvision architectures, seeded weights, BatchNorm statistics calibrated
                     on real photos so activations have realistic scale, saved with torch.jit.script
  chain.pt           a hand-written model whose children are registered in another order than
                     they are called, with a skip connection between two of them
  broadcast-residual.pt  a convolution plus a [N, C, 1, 1] tensor, then ReLU (see BroadcastResidual)
  winograd-blocks.pt  3x3 stride-1 convolutions in the shapes Winograd finds awkward (WinogradBlocks)
  *.f32, *.u8        raw little-endian float32 tensors and uint8 images
  manifest.json      shapes, files, parameter counts, names, and what PyTorch computed

Reference outputs come from forward hooks on the original eager model: what each module outputs
inside the model's own forward, call by call (a module called twice has hooks fire twice: its
outputs are named `name` and `name_1`, as torchvision names them). No pretrained weights can be
downloaded here, hence the seeds.
"""
import json
import os
import sys
from collections import defaultdict
from typing import Tuple

import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms.functional as TF
from torchvision import transforms
from torchvision.models.feature_extraction import get_graph_node_names

from torch_models import PREPROCESS, photos, seeded_model

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures')
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def save(name, tensor, dtype='<f4'):
    array = tensor.detach().contiguous().numpy().astype(dtype)
    suffix = '.u8' if dtype == 'u1' else '.f32'
    array.tofile(os.path.join(OUT, name + suffix))
    return {'file': name + suffix, 'shape': list(array.shape)}


def call_outputs(model, x, wanted=None):
    """Runs the eager model once; returns the output of every module call (or of those `wanted`),
    named as torchvision names them, and the model's output."""
    outputs, calls, handles = {}, defaultdict(int), []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m, _i, out, name=name):
            k = calls[name]
            calls[name] += 1
            key = name if k == 0 else f'{name}_{k}'
            if wanted is None or key in wanted:
                outputs[key] = out.detach().clone()
        handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        final = model(x)
    for handle in handles:
        handle.remove()
    return outputs, final


def leaf_call_names(model):
    """torchvision's names (get_graph_node_names, eval) that are calls of leaf modules."""
    modules = dict(model.named_modules())
    _, names = get_graph_node_names(model)
    leaves = []
    for name in names:
        base = name.rsplit('_', 1)[0] if name.rsplit('_', 1)[-1].isdigit() else name
        for candidate in (name, base):
            module = modules.get(candidate)
            if module is not None and candidate and not list(module.children()):
                leaves.append(name)
                break
    return leaves


def params_up_to(model, layer):
    kept = []
    for name, child in model.named_children():
        kept.append(child)
        if name == layer:
            break
    return sum(p.numel() for m in kept for p in m.parameters())


def architecture(arch, x, nested, tag):
    """Script a seeded torchvision model and record PyTorch's outputs at every top-level child and
    at the nested names given."""
    model = seeded_model(arch)
    torch.jit.script(model).save(os.path.join(OUT, f'{arch}.pt'))
    top = [name for name, _ in model.named_children()]
    outputs, final = call_outputs(model, x, set(top) | set(nested))
    return model, {
        'file': f'{arch}.pt',
        'layers': [{'name': n, 'type': type(m).__name__} for n, m in model.named_children()],
        'parameterCounts': {name: params_up_to(model, name) for name in top},
        'input': save(f'{arch}-{tag}-input', x),
        'outputs': {name: save(f'{arch}-{tag}-{name}', out) for name, out in outputs.items()},
        'modelOutput': save(f'{arch}-{tag}-model', final),
        'nested': nested,
        'leafCalls': leaf_call_names(model),
    }


class Chain(torch.nn.Module):
    """Children registered as head, body, tail, extra but called tail -> head -> body, with a skip
    connection (body's input is added to its output before `extra`)."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU())
        self.tail = torch.nn.Conv2d(3, 8, 1)
        self.extra = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.tail(x)
        x = self.head(x)
        y = self.body(x)
        return self.extra(x + y)


class BroadcastResidual(torch.nn.Module):
    """relu(body(x) + gate(pool(x))): a residual addition whose right side is [N, C, 1, 1] and
    broadcasts. optimize's oneDNN rewrite folds residual additions into the convolution's sum,
    which cannot broadcast: this one must be handed back to LibTorch at run time."""

    def __init__(self):
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.gate = torch.nn.Conv2d(3, 16, 1)
        self.body = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.act = torch.nn.ReLU()

    def forward(self, x):
        g = self.gate(self.pool(x))
        return self.act(self.body(x) + g)


class WinogradBlocks(torch.nn.Module):
    """3x3 stride-1 convolutions for optimize's own Winograd operator (LibTorch 2.x, float32):
    channel counts that are not multiples of its 64-channel steps, one convolution without bias,
    residual additions with and without a ReLU after them and one that broadcasts ([N, C, 1, 1]),
    an activation it does not fuse (SiLU), and inputs whose sides are not multiples of its 4x4
    output tiles."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(24, 40, 3, padding=1)
        self.b = torch.nn.Conv2d(40, 40, 3, padding=1)
        self.c = torch.nn.Conv2d(40, 80, 3, padding=1, bias=False)
        self.d = torch.nn.Conv2d(80, 80, 3, padding=1)
        self.g = torch.nn.Conv2d(80, 80, 3, padding=1)
        self.e = torch.nn.Conv2d(80, 32, 3, padding=1)
        self.out = torch.nn.Identity()

    def forward(self, x):
        a = F.relu(self.a(x))
        b = F.relu(self.b(a) + a)
        c = self.c(b)
        d = self.d(c) + c
        # The broadcast term first: it must exist before the convolution for the addition to fuse.
        g = F.relu(d.mean((2, 3), keepdim=True) + self.g(d))
        return self.out(F.silu(self.e(g)))


class Branchy(torch.nn.Module):
    """A forward with no single output for some modules: `gate` runs only when the input's mean
    is positive (data-dependent), `pair` returns a tuple, `unused` is never called."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 1)
        self.gate = torch.nn.ReLU()
        self.pair = Pair()
        self.unused = torch.nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        if bool(x.mean() > 0):
            x = self.gate(x)
        a, b = self.pair(x)
        return a + b


class Pair(torch.nn.Module):
    def forward(self, x):
        return x * 2, x - 1


class ReadsFile(torch.nn.Module):
    """A model whose forward reads a file of the machine it runs on: what an attacker's model can do."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        leaked = torch.from_file('/etc/hostname', shared=False, size=4, dtype=torch.uint8)
        return self.conv(x) + leaked.sum().float() * 0


class WritesOnLoad(torch.nn.Module):
    """A leaf whose __setstate__ writes a file (relative: into the loading process's working
    folder). LibTorch's loader runs __setstate__ while it unpickles, before anything else."""

    def __init__(self):
        super().__init__()
        self.note = 'setstate-canary.txt'

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.note, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.note = state[0]
        self.training = state[1]
        torch.save('\nWRITTEN BY __setstate__\n', self.note)

    def forward(self, x):
        return x


class SetStateWrites(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)
        self.trap = WritesOnLoad()

    def forward(self, x):
        return self.trap(self.conv(x))


def truncate_record(source, target, record, size):
    """A copy of the archive `source` whose `record` is cut to `size` bytes: what a disk error or
    an interrupted copy leaves, with the pickle still naming the whole tensor."""
    import zipfile
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, 'w', zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            data = old.read(info.filename)
            new.writestr(info.filename, data[:size] if info.filename.endswith(record) else data)


class Spin(torch.nn.Module):
    """A model whose forward never returns (2^63 iterations of an integer loop): what a hostile or
    broken model can do to the thread that runs it."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        n = 0
        while n >= 0:
            n = n + 1
        return self.conv(x + n)  # conv's input needs the loop: every cut at conv runs it


class Ballast(torch.nn.Module):
    def forward(self, x):
        ballast = torch.ones(1 << 30)  # 4 GiB of float32, written
        return x + ballast[1:].sum() * 0


class MemoryBomb(torch.nn.Module):
    """A model whose forward fills gigabytes on the way to its output (child 'bomb'): what a
    hostile or broken model can do."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)
        self.bomb = Ballast()

    def forward(self, x):
        return self.bomb(self.conv(x))


class TwoOutputs(torch.nn.Module):
    """A model whose forward returns a tuple, not a tensor."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)
        self.act = torch.nn.ReLU()

    def forward(self, x):
        y = self.conv(x)
        return y, self.act(y)


def deep_condition(depth):
    """A model whose forward runs `conv` under an if whose condition is `depth` nots of a flag:
    code that grows with the model, which must never make the addon recurse once per line."""
    import importlib.util
    import tempfile
    lines = ['import torch', '', '', 'class DeepCondition(torch.nn.Module):', '    def __init__(self):',
             '        super().__init__()', '        self.flag = True', '        self.conv = torch.nn.Conv2d(3, 4, 1)', '',
             '    def forward(self, x):', '        c0 = self.flag']
    lines += [f'        c{i} = not c{i - 1}' for i in range(1, depth + 1)]
    lines += [f'        if c{depth}:', '            x = self.conv(x)', '        return x', '']
    with tempfile.TemporaryDirectory() as folder:
        # torch.jit.script reads the class's source from its file.
        path = os.path.join(folder, 'deep_condition.py')
        with open(path, 'w') as f:
            f.write('\n'.join(lines))
        spec = importlib.util.spec_from_file_location('deep_condition', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return torch.jit.script(module.DeepCondition().eval())


def bad_models():
    """Files that must be refused with a clear error, never a crash."""
    import zipfile
    torch.manual_seed(7)
    chain = Chain().eval()
    torch.save(chain.state_dict(), os.path.join(OUT, 'bad-state-dict.pt'))
    torch.save(chain, os.path.join(OUT, 'bad-pickled-module.pt'))
    whole = open(os.path.join(OUT, 'chain.pt'), 'rb').read()
    open(os.path.join(OUT, 'bad-truncated.pt'), 'wb').write(whole[:len(whole) // 2])
    with zipfile.ZipFile(os.path.join(OUT, 'bad-not-torchscript.zip'), 'w') as archive:
        archive.writestr('readme.txt', 'a zip archive, not a model')
    torch.jit.script(ReadsFile().eval()).save(os.path.join(OUT, 'bad-reads-file.pt'))
    torch.jit.script(SetStateWrites().eval()).save(os.path.join(OUT, 'bad-setstate-writes.pt'))
    torch.jit.script(Spin().eval()).save(os.path.join(OUT, 'bad-spin.pt'))
    # conv.weight of chain.pt: 2,304 bytes, cut to 4.
    truncate_record(os.path.join(OUT, 'chain.pt'), os.path.join(OUT, 'bad-short-record.pt'), '/data/0', 4)
    torch.jit.script(TwoOutputs().eval()).save(os.path.join(OUT, 'two-outputs.pt'))
    torch.jit.script(MemoryBomb().eval()).save(os.path.join(OUT, 'bad-memory-bomb.pt'))
    # 50,000 deep: the depth at which folding the condition recursively overflowed the stack.
    deep_condition(50000).save(os.path.join(OUT, 'bad-deep-condition.pt'))
    return {'stateDict': 'bad-state-dict.pt', 'pickledModule': 'bad-pickled-module.pt', 'truncated': 'bad-truncated.pt',
            'notTorchScript': 'bad-not-torchscript.zip', 'readsFile': 'bad-reads-file.pt', 'twoOutputs': 'two-outputs.pt',
            'memoryBomb': 'bad-memory-bomb.pt', 'deepCondition': 'bad-deep-condition.pt',
            'setstateWrites': 'bad-setstate-writes.pt', 'shortRecord': 'bad-short-record.pt', 'spin': 'bad-spin.pt'}


def torchsummary_rows(model, input_shape):
    """torchsummary's table (summary(model, input_size)), re-implemented with its own rules: a
    hook on every module but Sequential, ModuleList and the model itself; parameters are the
    module's own weight and bias; shapes with batch -1."""
    rows, handles = [], []
    for module in model.modules():
        if isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList)) or module is model:
            continue

        def hook(m, _i, out):
            params = sum(p.numel() for n, p in m.named_parameters(recurse=False) if n in ('weight', 'bias'))
            rows.append({'type': type(m).__name__, 'outputShape': list(out.shape[1:]), 'parameters': params})
        handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(2, *input_shape))
    for handle in handles:
        handle.remove()
    return rows


def preprocessing():
    """The photos as uint8 HWC, and what torchvision makes of them: the PIL pipeline (PREPROCESS)
    and the same transforms on uint8 tensors (antialiased bilinear), with defaults and others."""
    images = photos()
    rgba = torch.cat([torch.from_numpy(images[0]), torch.full(images[0].shape[:2] + (1,), 255, dtype=torch.uint8)], 2)
    files = [save(f'photo-{i}', torch.from_numpy(img), 'u1') for i, img in enumerate(images)]
    files.append(save('photo-0-rgba', rgba, 'u1'))

    def tensor_pipeline(img, resize, crop, mean, std):
        t = torch.from_numpy(img[..., :3]).permute(2, 0, 1).contiguous()
        t = TF.resize(t, resize, antialias=True)
        t = TF.center_crop(t, crop)
        t = TF.convert_image_dtype(t, torch.float32)
        return TF.normalize(t, mean, std) if mean else t

    return {
        'images': files,
        'pil': save('preprocess-pil', torch.stack([PREPROCESS(img) for img in images])),
        'tensor': save('preprocess-tensor', torch.stack([tensor_pipeline(img, 256, 224, MEAN, STD) for img in images])),
        'custom': {
            'options': {'resize': 160, 'crop': 128, 'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25]},
            'expected': save('preprocess-custom', torch.stack([tensor_pipeline(img, 160, 128, [0.5] * 3, [0.25] * 3) for img in images])),
        },
        'unnormalized': {
            'options': {'resize': 100, 'crop': 96, 'mean': False},
            'expected': save('preprocess-unnormalized', torch.stack([tensor_pipeline(img, 100, 96, None, None) for img in images])),
        },
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    manifest = {'torch': torch.__version__, 'torchvision': torchvision.__version__}

    # ResNet-18 at 224x224, a batch of four photos, and one non-square image (3x160x200).
    model = seeded_model('resnet18')
    torch.jit.script(model).save(os.path.join(OUT, 'resnet18.pt'))
    batch = torch.stack([PREPROCESS(img) for img in photos()])
    wide = transforms.Compose([transforms.ToPILImage(), transforms.Resize((160, 200)), transforms.ToTensor(),
                               transforms.Normalize(mean=MEAN, std=STD)])
    nonsquare = wide(photos()[0]).unsqueeze(0)
    layers = [name for name, _ in model.named_children()]
    nested = ['layer1.0.relu', 'layer1.0.relu_1', 'layer1.0.bn2', 'layer2.0.downsample', 'layer2.0.downsample.0',
              'layer3.1.conv2', 'layer4.1', 'fc']
    cases = {}
    for case, x in (('batch4', batch), ('nonsquare', nonsquare)):
        outputs, final = call_outputs(model, x, set(layers) | set(nested))
        cases[case] = {'input': save(f'resnet18-{case}-input', x),
                       'outputs': {name: save(f'resnet18-{case}-{name}', out) for name, out in outputs.items()},
                       'modelOutput': save(f'resnet18-{case}-model', final)}
    deep = call_outputs(model, batch, {'layer4'})[0]['layer4']
    manifest['resnet18'] = {
        'file': 'resnet18.pt',
        'layers': [{'name': n, 'type': type(m).__name__} for n, m in model.named_children()],
        'parameterCounts': {name: params_up_to(model, name) for name in layers},
        'cases': cases,
        # Cuts where the children in a chain reproduce the model: up to avgpool. fc gets a flatten
        # first inside ResNet's forward, so it is cut in the graph.
        'chainLayers': layers[:layers.index('avgpool') + 1],
        'nested': nested,
        'leafCalls': leaf_call_names(model),
        'pooled': {
            'avg': save('resnet18-batch4-layer4-avg', F.adaptive_avg_pool2d(deep, 1).flatten(1)),
            'max': save('resnet18-batch4-layer4-max', F.adaptive_max_pool2d(deep, 1).flatten(1)),
            'avgL2': save('resnet18-batch4-layer4-avg-l2', F.normalize(F.adaptive_avg_pool2d(deep, 1).flatten(1), dim=1)),
            'mapL2': save('resnet18-batch4-layer4-l2', F.normalize(deep.flatten(1), dim=1).view_as(deep)),
        },
        'summary': {'inputShape': [3, 224, 224], 'rows': torchsummary_rows(
            torch.nn.Sequential(*list(model.children())[:layers.index('layer4') + 1]), [3, 224, 224])},
    }

    # Two more architectures, two images each at 160x160 (any size their pooling accepts).
    small = torch.stack([transforms.Compose([transforms.ToPILImage(), transforms.Resize(160), transforms.CenterCrop(160),
                                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])(img)
                         for img in photos()[:2]])
    manifest['mobilenet_v2'] = architecture('mobilenet_v2', small, [
        'features.0', 'features.3', 'features.3.conv.1', 'features.10', 'features.17.conv.2', 'features.18',
        'classifier.1'], 'small')[1]
    manifest['densenet121'] = architecture('densenet121', small, [
        'features.denseblock1', 'features.denseblock1.denselayer1', 'features.transition1.conv',
        'features.denseblock2.denselayer3.conv2', 'features.norm5'], 'small')[1]
    # MBConv's residual branch (use_res_connect) holds stochastic_depth: a branch on a module flag.
    manifest['efficientnet_b0'] = architecture('efficientnet_b0', small, [
        'features.1.0.block.0', 'features.2.0', 'features.3.1.stochastic_depth', 'features.3.1', 'classifier.1'], 'small')[1]

    # Hardswish and squeeze-excitation: LibTorch 1.13's optimize_for_inference pads its 120-channel
    # layers to 128 and gives wrong features from features.7 on (optimize must notice and fall back).
    manifest['mobilenet_v3_small'] = architecture('mobilenet_v3_small', small, [
        'features.1', 'features.4', 'features.7', 'features.8.block.2', 'features.11', 'classifier.0'], 'small')[1]

    torch.manual_seed(7)
    chain = Chain().eval()
    torch.jit.script(chain).save(os.path.join(OUT, 'chain.pt'))
    x = torch.randn(2, 3, 12, 10, generator=torch.Generator().manual_seed(7))
    outputs, _ = call_outputs(chain, x, {'tail', 'head', 'body', 'extra'})
    manifest['chain'] = {
        'file': 'chain.pt',
        'layers': [{'name': n, 'type': type(m).__name__} for n, m in chain.named_children()],
        'input': save('chain-input', x),
        'outputs': {name: save(f'chain-{name}', out) for name, out in outputs.items()},
        'callOrder': ['tail', 'head', 'body'],
    }
    torch.manual_seed(7)
    broadcast = BroadcastResidual().eval()
    torch.jit.script(broadcast).save(os.path.join(OUT, 'broadcast-residual.pt'))
    x = torch.randn(2, 3, 20, 18, generator=torch.Generator().manual_seed(7))
    outputs, _ = call_outputs(broadcast, x, {'act'})
    manifest['broadcastResidual'] = {
        'file': 'broadcast-residual.pt',
        'input': save('broadcast-residual-input', x),
        'outputs': {name: save(f'broadcast-residual-{name}', out) for name, out in outputs.items()},
    }
    torch.manual_seed(7)
    blocks = WinogradBlocks().eval()
    torch.jit.script(blocks).save(os.path.join(OUT, 'winograd-blocks.pt'))
    manifest['winogradBlocks'] = {'file': 'winograd-blocks.pt', 'cases': {}}
    # 120 output tiles of 4x4 (Winograd's products), 9 (too few: oneDNN's direct convolution), and
    # 1,520 (done in two chunks where a layer has 80 channels: native/winograd/winograd_op.cc).
    for case, shape in (('tiles120', (3, 24, 19, 30)), ('tiles9', (1, 24, 9, 10)), ('tiles1520', (1, 24, 160, 152))):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(7))
        outputs, _ = call_outputs(blocks, x, {'a', 'b', 'c', 'd', 'g', 'e', 'out'})
        manifest['winogradBlocks']['cases'][case] = {
            'input': save(f'winograd-blocks-{case}-input', x),
            'outputs': {name: save(f'winograd-blocks-{case}-{name}', out) for name, out in outputs.items()},
        }
    torch.jit.script(Branchy().eval()).save(os.path.join(OUT, 'branchy.pt'))
    manifest['branchy'] = {'file': 'branchy.pt'}
    manifest['bad'] = bad_models()
    manifest['preprocess'] = preprocessing()
    # A model that returns its input, so that an extractor's output is its preprocessed input.
    torch.jit.script(torch.nn.Sequential(torch.nn.Identity())).save(os.path.join(OUT, 'identity.pt'))
    manifest['identity'] = {'file': 'identity.pt', 'layer': '0'}

    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
    print(f'fixtures written to {os.path.abspath(OUT)}')


if __name__ == '__main__':
    main()

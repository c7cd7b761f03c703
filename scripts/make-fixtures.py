#!/usr/bin/python3
"""Test fixtures and ground truth, computed by PyTorch itself.

Run with Debian's interpreter (/usr/bin/python3: torch 1.13, torchvision 0.14); the `python3` first
on PATH may have no torch. Writes into test/fixtures/ (or the folder given):

  resnet18.pt        torchvision's ResNet-18, seeded weights, BatchNorm statistics calibrated on
                     real photos so activations have realistic scale, saved with torch.jit.script
  chain.pt           a hand-written model whose children are registered in another order than
                     they are called, with a skip connection between two of them
  *.f32              raw little-endian float32 tensors (inputs and reference outputs)
  manifest.json      shapes, files, parameter counts and which cuts PyTorch reports

Reference outputs come from forward hooks on the original eager model: what each child outputs
inside the model's own forward. No pretrained weights can be downloaded here, hence the seeds.
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision
from torchvision import transforms

from torch_models import PREPROCESS, photos, resnet18_seeded

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures')
def save(name, tensor):
    array = tensor.detach().contiguous().numpy().astype('<f4')
    array.tofile(os.path.join(OUT, name + '.f32'))
    return {'file': name + '.f32', 'shape': list(array.shape)}


def hooked_outputs(model, x):
    """Runs the eager model once, recording every top-level child's output with a forward hook."""
    outputs, handles = {}, []
    for name, child in model.named_children():
        handles.append(child.register_forward_hook(
            lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach().clone())))
    with torch.no_grad():
        final = model(x)
    for handle in handles:
        handle.remove()
    return outputs, final


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


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    manifest = {'torch': torch.__version__, 'torchvision': torchvision.__version__}

    # ResNet-18 at 224x224, a batch of four photos.
    model = resnet18_seeded()
    torch.jit.script(model).save(os.path.join(OUT, 'resnet18.pt'))
    batch = torch.stack([PREPROCESS(img) for img in photos()])
    # A non-square input (3x160x200) made from the first photo.
    wide = transforms.Compose([transforms.ToPILImage(), transforms.Resize((160, 200)), transforms.ToTensor(),
                               transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    nonsquare = wide(photos()[0]).unsqueeze(0)

    layers = [name for name, _ in model.named_children()]
    params = {}
    kept = []
    for name, child in model.named_children():
        kept.append(child)
        params[name] = sum(p.numel() for m in kept for p in m.parameters())
    cases = {}
    for case, x in (('batch4', batch), ('nonsquare', nonsquare)):
        outputs, final = hooked_outputs(model, x)
        cases[case] = {'input': save(f'resnet18-{case}-input', x),
                       'outputs': {name: save(f'resnet18-{case}-{name}', out) for name, out in outputs.items()},
                       'modelOutput': save(f'resnet18-{case}-model', final)}
    manifest['resnet18'] = {
        'file': 'resnet18.pt',
        'layers': [{'name': n, 'type': type(m).__name__} for n, m in model.named_children()],
        'parameterCounts': params,
        'cases': cases,
        # Cuts where the children in a chain reproduce the model: up to avgpool. fc gets a flatten
        # first inside ResNet's forward.
        'chainLayers': layers[:layers.index('avgpool') + 1],
    }

    torch.manual_seed(7)
    chain = Chain().eval()
    torch.jit.script(chain).save(os.path.join(OUT, 'chain.pt'))
    x = torch.randn(2, 3, 12, 10, generator=torch.Generator().manual_seed(7))
    outputs, _ = hooked_outputs(chain, x)
    manifest['chain'] = {
        'file': 'chain.pt',
        'layers': [{'name': n, 'type': type(m).__name__} for n, m in chain.named_children()],
        'input': save('chain-input', x),
        'outputs': {name: save(f'chain-{name}', out) for name, out in outputs.items()},
        'callOrder': ['tail', 'head', 'body'],
    }

    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
    print(f'fixtures written to {os.path.abspath(OUT)}')


if __name__ == '__main__':
    main()

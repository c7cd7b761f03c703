#!/usr/bin/python3
"""Exports the demo's TorchScript ResNet-18.

  /usr/bin/python3 scripts/export-resnet18.py [OUT_DIR]     (default: models/)

Writes OUT_DIR/resnet18.pt (torch.jit.script). ImageNet weights are used when torchvision can
download them; otherwise seeded weights, and the script says plainly that they are untrained.
"""
import os
import socket
import sys

import torch
import torchvision

from torch_models import resnet18_seeded

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'models')


def pretrained():
    socket.setdefaulttimeout(20)
    try:
        weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
        return torchvision.models.resnet18(weights=weights).eval(), 'ImageNet weights (IMAGENET1K_V1)'
    except Exception as error:  # no network, no cache: fall back, and say so
        reason = str(error).splitlines()[0][:120]
        return None, reason


def main():
    os.makedirs(OUT, exist_ok=True)
    model, what = pretrained()
    if model is None:
        print(f'NOTICE: pretrained weights could not be downloaded ({what}); using seeded, UNTRAINED '
              'weights. The features have the right shapes and flow, not ImageNet semantics.')
        model, what = resnet18_seeded(), 'seeded untrained weights'
    path = os.path.join(OUT, 'resnet18.pt')
    torch.jit.script(model).save(path)
    print(f'exported {os.path.relpath(path)} with {what}')


if __name__ == '__main__':
    main()

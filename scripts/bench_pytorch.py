#!/usr/bin/python3
"""PyTorch's side of `npm run bench`: ResNet-18 cut at layer4 in Python, on the same LibTorch
build as far as the machine allows, with the same thread count. Prints one JSON object per
contender on stdout.

  /usr/bin/python3 scripts/bench_pytorch.py --device cpu --threads 2 --batches 1,8,32 --reps 5
  /usr/bin/python3 scripts/bench_pytorch.py --export-onnx OUT.onnx     (the same cut, for onnxruntime)

Contenders:
  eager-children   the article's way: the children up to layer4 in an nn.Sequential, eager
  frozen-optimized CPU: torch.jit.freeze + torch.jit.optimize_for_inference
  half-channels-last  CUDA: float16, channels-last, cudnn.benchmark
Each timed run includes the copy of the result to host memory (.cpu() on CUDA).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from torch_models import resnet18_seeded  # noqa: E402


def cut(model):
    children = list(model.children())
    return torch.nn.Sequential(*children[:children.index(model.layer4) + 1]).eval()


def median_rate(run, batch, reps, iters):
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(iters):
            run()
        rates.append(batch * iters / (time.perf_counter() - start))
    return statistics.median(rates)


def bench(name, forward, device, args, make_input):
    results = {}
    for batch in args.batches:
        x = make_input(batch)
        run = lambda: forward(x).cpu()  # noqa: E731
        for _ in range(args.warmup):
            run()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        iters = max(1, round(args.images / batch))
        results[str(batch)] = {'imagesPerSecond': median_rate(run, batch, args.reps, iters)}
    x = make_input(1)
    latencies = []
    for _ in range(args.warmup):
        forward(x).cpu()
    for _ in range(args.latency_runs):
        start = time.perf_counter()
        forward(x).cpu()
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    out = {
        'name': f'pytorch {name}', 'device': str(device), 'threads': torch.get_num_threads(), 'torch': torch.__version__,
        'batches': results,
        'latencyMs': {'p50': latencies[len(latencies) // 2], 'p99': latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]},
        'peakRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == 'cuda':
        out['peakCudaMiB'] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(out), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument('--batches', default='1,8,32')
    parser.add_argument('--reps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--images', type=int, default=32, help='images per timed repetition')
    parser.add_argument('--latency-runs', type=int, default=50)
    parser.add_argument('--only', default='')
    parser.add_argument('--export-onnx')
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(',')]
    torch.set_num_threads(args.threads)
    net = cut(resnet18_seeded())

    if args.export_onnx:
        torch.onnx.export(net, torch.zeros(1, 3, 224, 224), args.export_onnx, input_names=['input'],
                          output_names=['features'], dynamic_axes={'input': {0: 'batch'}, 'features': {0: 'batch'}},
                          opset_version=13)
        return

    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    wanted = set(filter(None, args.only.split(',')))
    with torch.inference_mode():
        if not wanted or 'eager-children' in wanted:
            eager = net.to(device)
            bench('eager-children', eager, device, args,
                  lambda b: torch.rand(b, 3, 224, 224, generator=generator).to(device))
        if device.type == 'cpu' and (not wanted or 'frozen-optimized' in wanted):
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(cut(resnet18_seeded()))))
            bench('frozen-optimized', frozen, device, args, lambda b: torch.rand(b, 3, 224, 224, generator=generator))
        if device.type == 'cuda' and (not wanted or 'half-channels-last' in wanted):
            torch.backends.cudnn.benchmark = True
            best = cut(resnet18_seeded()).to(device).half().to(memory_format=torch.channels_last)
            bench('half-channels-last', best, device, args,
                  lambda b: torch.rand(b, 3, 224, 224, generator=generator).to(device).half().contiguous(memory_format=torch.channels_last))


if __name__ == '__main__':
    main()

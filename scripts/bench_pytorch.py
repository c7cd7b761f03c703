#!/usr/bin/python3
"""PyTorch's side of `npm run bench`: ResNet-18 cut at layer4 in Python, on the same LibTorch
build as far as the machine allows, with the same thread count. Prints one JSON object per
contender on stdout.

  /usr/bin/python3 scripts/bench_pytorch.py --device cpu --threads 2 --batches 1,8,32 --reps 5
  /usr/bin/python3 scripts/bench_pytorch.py --export-onnx OUT.onnx     (the same cut, for onnxruntime)

Contenders:
  eager-children   the article's way: the children up to layer4 in an nn.Sequential, eager. On
                   CUDA: float32 tensors in host memory uploaded in each timed run, PyTorch's
                   defaults (cuDNN may use TF32; cudnn.benchmark off)
  frozen-optimized CPU: torch.jit.freeze + torch.jit.optimize_for_inference
  compile-frozen   CPU, PyTorch 2.x: torch.compile (Inductor) with freezing, float32
  compile-frozen-bf16-autocast
                   CPU, PyTorch 2.x: the same under bfloat16 autocast (PyTorch's fastest CPU path
                   where the CPU has AVX512_BF16 or AMX; one compilation per batch size)
  graph-float16-channels-last, graph-bfloat16-channels-last
                   CUDA, Python's best path: uint8 images [N, 224, 224, 3] in pinned memory,
                   uploaded asynchronously; conversion, normalisation, the cut in half precision
                   and channels-last, and the float32 result replayed as one CUDA graph (captured
                   per batch size, cudnn.benchmark on); the result copied into pinned memory
  limits           CUDA: not a contender; the GPU's measured bf16 matrix rate and pinned
                   host-device bandwidth, for the physical floor the bench prints
Each timed run includes the copy of the result to host memory.
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


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class GraphedPipeline:
    """uint8 HWC images to float32 features as one CUDA graph per batch size: the upload goes into
    a static input buffer, the replay computes, the result is copied out to pinned memory."""

    def __init__(self, net, dtype, device):
        self.net, self.dtype, self.device, self.graphs = net, dtype, device, {}
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255

    def compute(self, pixels):
        x = pixels.permute(0, 3, 1, 2).float().sub_(self.mean).div_(self.std)
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return self.net(x).float()

    def graph_for(self, batch):
        if batch not in self.graphs:
            static_in = torch.zeros(batch, 224, 224, 3, dtype=torch.uint8, device=self.device)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm up cuDNN's benchmark outside the capture
                    self.compute(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.compute(static_in)
            out_host = torch.empty(static_out.shape, dtype=torch.float32, pin_memory=True)
            self.graphs[batch] = (graph, static_in, static_out, out_host)
        return self.graphs[batch]

    def __call__(self, host_pixels):
        graph, static_in, static_out, out_host = self.graph_for(host_pixels.shape[0])
        static_in.copy_(host_pixels, non_blocking=True)
        graph.replay()
        out_host.copy_(static_out, non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return out_host


def bench_graph(name, dtype, device, args):
    torch.backends.cudnn.benchmark = True
    net = cut(resnet18_seeded()).to(device).to(dtype).to(memory_format=torch.channels_last).eval()
    pipeline = GraphedPipeline(net, dtype, device)
    generator = torch.Generator().manual_seed(0)

    def make_input(batch):
        return torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8, generator=generator).pin_memory()

    # bench() calls .cpu() on the result: a no-op for the pinned host tensor returned here.
    bench(name, pipeline, device, args, make_input)


def bench_compiled(name, autocast, device, args, generator):
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True
    compiled = torch.compile(cut(resnet18_seeded()))

    def forward(x):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            return compiled(x).float()
    bench(name, forward, device, args, lambda b: torch.rand(b, 3, 224, 224, generator=generator))


def limits(device):
    """The two ceilings the bench's floor is computed from, measured here (never datasheet rates)."""
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    end.synchronize()
    bf16_tflops = 10 * 2 * 8192 ** 3 / (start.elapsed_time(end) / 1000) / 1e12
    host = torch.empty(256 << 20, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(256 << 20, dtype=torch.uint8, device=device)

    def rate(copy):
        copy()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(5):
            copy()
        torch.cuda.synchronize()
        return 5 * (256 << 20) / (time.perf_counter() - t) / 1e9

    h2d = rate(lambda: dev.copy_(host, non_blocking=True))
    d2h = rate(lambda: host.copy_(dev, non_blocking=True))
    print(json.dumps({'name': 'limits', 'bf16Tflops': bf16_tflops, 'h2dGBps': h2d, 'd2hGBps': d2h,
                      'gpu': torch.cuda.get_device_name(device), 'torch': torch.__version__,
                      'cuda': torch.version.cuda, 'cudnn': torch.backends.cudnn.version()}), flush=True)


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
            # The input stays in host memory: each timed run uploads it, as a pipeline would.
            bench('eager-children', lambda x: eager(x.to(device)), device, args,
                  lambda b: torch.rand(b, 3, 224, 224, generator=generator))
        if device.type == 'cpu' and (not wanted or 'frozen-optimized' in wanted):
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(cut(resnet18_seeded()))))
            bench('frozen-optimized', frozen, device, args, lambda b: torch.rand(b, 3, 224, 224, generator=generator))
        if device.type == 'cpu' and hasattr(torch, 'compile'):
            for name, autocast in (('compile-frozen', False), ('compile-frozen-bf16-autocast', True)):
                if not wanted or name in wanted:
                    bench_compiled(name, autocast, device, args, generator)
        if device.type == 'cuda':
            for dtype in (torch.float16, torch.bfloat16):
                name = f'graph-{str(dtype).split(".")[1]}-channels-last'
                if not wanted or name in wanted:
                    bench_graph(name, dtype, device, args)
            if not wanted or 'limits' in wanted:
                limits(device)


if __name__ == '__main__':
    main()

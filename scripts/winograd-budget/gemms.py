# The matrix products of a Winograd F(4x4, 3x3) convolution on oneDNN's matmul, against LibTorch's
# fused direct convolution, for ResNet-18's 3x3 stride-1 layers at batch 8, float32, 2 threads.
# Run with PyTorch 2.x (the products go through mkldnn::_linear_pointwise, one call per product,
# so Python's per-call cost is included: an upper bound). See BENCHMARKS.md, "LibTorch 2.6".
#   python3 scripts/winograd-budget/gemms.py
import time

import torch

torch.set_num_threads(2)
ops = torch.ops.mkldnn


def median_ms(f, n=10):
    for _ in range(3):
        f()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            f()
        times.append((time.perf_counter() - start) / n * 1000)
    return sorted(times)[2]


B = 8
total = {'direct': 0.0, 'products': 0.0}
for C, H, count in [(64, 56, 4), (128, 28, 3), (256, 14, 3), (512, 7, 3)]:
    x = torch.rand(B, C, H, H).contiguous(memory_format=torch.channels_last)
    w = torch.rand(C, C, 3, 3)
    packed = ops._reorder_convolution_weight(w, [1, 1], [1, 1], [1, 1], 1, [B, C, H, H])
    bias = torch.rand(C)
    tiles = B * ((H + 3) // 4) ** 2
    V = [torch.rand(tiles, C) for _ in range(36)]
    # Packed ahead of time, as a convolution's transformed weights would be.
    U = [ops._reorder_linear_weight(torch.rand(C, C), tiles) for _ in range(36)]
    with torch.inference_mode():
        direct = median_ms(lambda: ops._convolution_pointwise(x, packed, bias, [1, 1], [1, 1], [1, 1], 1, 'none', [], ''))

        def products():
            for i in range(36):
                ops._linear_pointwise(V[i], U[i], None, 'none', [], '')

        product_ms = median_ms(products)
    print(f'C{C} {H}x{H}: direct (fused, packed, channels-last) {direct:.2f} ms; F(4x4,3x3) products {product_ms:.2f} ms; x{count}')
    total['direct'] += direct * count
    total['products'] += product_ms * count
print('over the 13 layers:', {k: round(v, 1) for k, v in total.items()})

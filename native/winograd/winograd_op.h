// A 3x3, stride-1 convolution of our own for float32 on the CPU: Winograd F(4x4, 3x3)
// (winograd_transforms.h) with its 36 matrix products on oneDNN, through LibTorch 2.x's
// mkldnn::_linear_pointwise with weights packed by mkldnn::_reorder_linear_weight.
//
// Why: oneDNN 3 (LibTorch 2.x) has no Winograd for this kind of CPU, and its direct algorithm
// spends about three quarters of a ResNet-18 forward in these convolutions; F(4x4, 3x3) does a
// quarter of the multiplications (BENCHMARKS.md, "LibTorch 2.6"). The bias, a residual addition
// and a ReLU are applied as the output is written. Both oneDNN operators are looked up by name, so
// the same binary uses them wherever a LibTorch has them (none on 1.13: there nothing is rewritten).
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace ltf {

// Whether this LibTorch registers the oneDNN operators the products (and small inputs) run on.
bool WinogradAvailable();

// Whether the convolution aten::conv2d(input, weight, bias, stride, padding, dilation, groups)
// is one this operator computes: float32 3x3 weight on the CPU, stride 1, padding 1, dilation 1,
// one group, and enough channels for the products to pay (at least 16 in and out).
bool WinogradSuits(const at::Tensor& weight, c10::IntArrayRef stride, c10::IntArrayRef padding,
                   c10::IntArrayRef dilation, int64_t groups);

// Memory the convolutions of one graph share for their transformed inputs (they run one at a
// time: runtime/forward_queue.h), kept between calls at its largest: a new 14 MB buffer per call
// would be mapped and page-faulted each time.
class WinogradScratch;
std::shared_ptr<WinogradScratch> MakeWinogradScratch();

// The constant the rewrite puts in the graph for one convolution: an object of this copy's custom
// class WinogradConv. weight: [out][in][3][3] float32; bias: [out] or none; relu: max(0, .) after
// the bias and the residual. input_size: the NCHW size of the input the weights are packed for
// (nullopt: not known; other inputs work too, oneDNN then reorders the weights). Inputs of fewer
// than 32 output tiles run on oneDNN's direct convolution instead (winograd_op.cc says why).
c10::IValue MakeWinogradConv(const at::Tensor& weight, const std::optional<at::Tensor>& bias, bool relu,
                             const std::optional<std::vector<int64_t>>& input_size,
                             std::shared_ptr<WinogradScratch> scratch);

// The operator's symbol: <ns>::winograd_conv(Tensor input, <ns>.WinogradConv conv, Tensor? residual)
// -> Tensor, in a namespace of this copy of the addon's own (two copies in one process must not
// register one name: see onednn/onednn_op.h).
c10::Symbol WinogradConvSymbol();

// The number of 4x4 output tiles of an input of `sizes` (NCHW).
int64_t WinogradTiles(c10::IntArrayRef sizes);

}  // namespace ltf

// Convolutions on LibTorch 2.x's own fused oneDNN operator, on the optimised CPU path.
//
// In bfloat16 on the CPU, `optimize` freezes the cut in float32 (conv-bn folding) and casts its
// constants (optimized_graph.h): each convolution is then aten::conv2d with a plain channels-last
// weight, followed by the ReLU and the residual addition as passes of their own over memory, and
// oneDNN reorders the weight into its blocked layout on every call. LibTorch 2.x registers the
// operator PyTorch's Inductor uses for the same graph (mkldnn::_convolution_pointwise: one oneDNN
// primitive with the activation, or the addition and the activation, as post-ops) and the
// reorder that packs a weight for it ahead of time (mkldnn::_reorder_convolution_weight). This
// rewrite turns the frozen graph's convolutions into it, with packed weights.
//
// In float32 the same operator alone is slower than optimize_for_inference's graph on this kind of
// CPU (BENCHMARKS.md), so there the rewrite also gives 3x3 stride-1 convolutions to the addon's own
// Winograd convolution (winograd/winograd_op.h), which is what pays; the graph runs channels-last.
//
// The operators are looked up by name when the rewrite runs: LibTorch 1.13 has none of them (there
// the rewrite does nothing), and the same binary uses them wherever a LibTorch 2.x has them.
// Measured in BENCHMARKS.md ("LibTorch 2.6").
#pragma once

#include <torch/script.h>

#include <memory>
#include <optional>

#include "onednn/onednn_conv.h"

namespace ltf {

// Whether this LibTorch registers the fused operator and the weight reorder.
bool PointwiseFusionAvailable();

// Whether new extractors use it: available, and not switched off with LTF_ONEDNN_FUSION=0 (the
// switch for both of the addon's convolution rewrites).
bool PointwiseFusionEnabled();

// Rewrites the aten::conv2d nodes of a frozen CPU graph whose weights are bfloat16 or float32
// constants, packing each weight for the input it gets when the graph runs `batch` (`self`: the
// frozen module, the graph's first input); the graph runs it once for that, before the rewrite.
// Other input shapes work too (oneDNN then reorders the weight on each call). `winograd`: 3x3
// stride-1 float32 convolutions go to the Winograd operator instead. Convolutions it cannot take
// (weights or hyper-parameters that are not constants, string padding, in nested blocks) stay as
// they were, and so does any one LibTorch refuses to pack. Returns what was done, or nullopt, with
// the graph untouched, where `batch` does not run through it.
std::optional<OneDnnReport> FusePointwiseConvolutions(const std::shared_ptr<torch::jit::Graph>& graph,
                                                      const c10::IValue& self, const at::Tensor& batch,
                                                      bool winograd);

}  // namespace ltf

// Convolutions handed to oneDNN directly, on the optimised CPU path (`optimize: true`).
//
// LibTorch 1.13's optimize_for_inference runs each convolution with oneDNN's direct algorithm and
// then the ReLU and the residual addition as passes of their own over memory. This rewrite turns
// each convolution of the frozen graph into one oneDNN primitive of our own with the activation
// (ReLU, ReLU6, SiLU) and the residual sum fused as post-ops, and gives the 3x3 stride-1
// convolutions the Winograd algorithm (F(4x4, 3x3): 2.25x fewer multiplications), which LibTorch
// never chooses. See BENCHMARKS.md for what each part measured.
//
// The new operator reads the ideep tensor inside LibTorch's MKLDNN tensors, so it is only built
// where LibTorch uses a shared system oneDNN and ideep's headers are there (a distribution's
// LibTorch, as Debian's): see LTF_ONEDNN in CMakeLists.txt. Elsewhere the rewrite is not compiled
// and the graph stays as optimize_for_inference left it.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>

namespace ltf {

struct OneDnnReport {
  int64_t convolutions = 0;       // convolutions now run by the fused operator
  int64_t winograd = 0;           // of which may use Winograd (each input shape decides: onednn/onednn_op.cc)
  int64_t fused_activations = 0;  // activations folded into a convolution
  int64_t fused_residuals = 0;    // residual additions folded into a convolution
};

// Whether this build has the rewrite.
bool OneDnnFusionAvailable();

// Whether new extractors use it: available, and not switched off with LTF_ONEDNN_FUSION=0 in the
// environment (to compare with LibTorch's own passes on the very same graph, as the benchmark
// does, or to rule the rewrite out while debugging).
bool OneDnnFusionEnabled();

// Rewrites the prim::mkldnn_convolution nodes of a frozen CPU float32 graph that went through
// optimize_for_inference. Convolutions it cannot take (grouped ones, weights that are not
// constants) stay as they were. `winograd`: allow the Winograd algorithm where it applies.
OneDnnReport FuseOneDnnConvolutions(const std::shared_ptr<torch::jit::Graph>& graph, bool winograd);

}  // namespace ltf

// Cutting a TorchScript model at any module call, nested or not, one or several at once: the
// forward graph is expanded down to the calls asked for, their outputs become the graph's
// outputs, whatever they do not need is removed, and the result is frozen into a new module that
// holds only the parameters it uses.
#pragma once

#include <torch/script.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/graph_expand.h"
#include "graph/optimized_graph.h"

namespace ltf {

// Every module call of the forward that can be cut at, in execution order (containers before
// what they contain). For listLayers({ nested: true }).
std::vector<CallSite> ListCalls(const torch::jit::Module& root);

struct GraphCut {
  // Exactly one runs the cut; forward(x) returns a tuple: one tensor per target, in order.
  std::optional<torch::jit::Module> module;   // frozen (or, where freezing failed, not)
  std::shared_ptr<OptimizedGraph> optimized;  // with `optimize`: checks itself (graph/optimized_graph.h)
  std::vector<std::string> kept;              // the top-level children it still uses
  int64_t parameter_count = 0;                // parameters those calls use, each counted once
  // Per target: whether its value does not depend on the input (a parameter the forward reads,
  // Swin's relative position bias): it has no rows of its own to split between callers.
  std::vector<bool> input_free;
};

// Cuts `root` (loaded on the CPU, in eval mode) at `targets` (call names as ListCalls gives
// them; a plain path is the module's first call), moves what it keeps to `device` and `dtype`
// (channels-last weights when asked) and freezes it; with `optimize`, with LibTorch's numerical
// optimisations and optimize_for_inference, then on the CPU in float32 the oneDNN rewrite
// (onednn/onednn_conv.h; `winograd` allows that algorithm), checked against the plain cut
// (graph/optimized_graph.h). Throws LAYER_NOT_FOUND for unknown names and
// UNSUPPORTED_CUT where a name has no single tensor output.
GraphCut CutGraph(const torch::jit::Module& root, const std::vector<std::string>& targets,
                  torch::Device device, torch::Dtype dtype, bool channels_last, bool optimize, bool winograd);

}  // namespace ltf

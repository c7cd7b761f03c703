// Expanding a TorchScript forward so that the calls of nested modules become visible, each with
// the name torchvision's feature extraction gives it ("layer1.0.relu", then "layer1.0.relu_1").
#pragma once

#include <torch/script.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ltf {

// One call of a submodule's forward, in execution order.
struct CallSite {
  std::string name;  // path, or path_K for its K-th call after the first: "layer1.0.relu_1"
  std::string path;  // the module's dotted path: "layer1.0.relu"
  std::string type;  // its class name: "ReLU"
  // Where its output is tracked among the expanded graph's outputs; -1 when it cannot be cut
  // at (see `why_not`).
  int output_index = -1;
  std::string why_not;  // "it is called inside an if or a loop", "it returns (Tensor, Tensor)"
};

// A copy of the forward graph with calls inlined. Its outputs are the forward's own output
// followed by one output per tracked call, which stays right as later inlining replaces values.
struct ExpandedForward {
  std::shared_ptr<torch::jit::Graph> graph;
  std::vector<CallSite> calls;
};

// Copies the forward of `root` (in eval mode) and inlines, one level at a time: calls of methods
// of `root` itself, and calls of any module whose path `expand` accepts. Conditions that depend
// only on module attributes (self.training, torchvision's use_res_connect) are folded so that
// only the branch the model takes in eval mode remains. Throws NativeError(MODEL_LOAD_FAILED)
// when the model has no forward taking one tensor.
ExpandedForward ExpandForward(const torch::jit::Module& root,
                              const std::function<bool(const std::string& path)>& expand);

}  // namespace ltf

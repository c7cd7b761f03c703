// Expanding a TorchScript forward so that the calls of nested modules become visible, each with
// the name torchvision's feature extraction gives it ("layer1.0.relu", then "layer1.0.relu_1"),
// and, where asked, the other nodes torchvision lists: functions and operators ("layer1.0.add",
// "flatten"), parameters read by a forward, the input.
#pragma once

#include <torch/script.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ltf {

// One call of a submodule's forward, or another node of the forward, in execution order.
struct CallSite {
  // torchvision's name for the node where it has one, else path, or path_K for a module's K-th
  // call after the first: "layer1.0.relu_1"
  std::string name;
  // A module call: the module's dotted path ("layer1.0.relu"). Another node: the module whose
  // forward runs it ("layer1.0" for "layer1.0.add"; "" for the model's own forward).
  std::string path;
  std::string type;  // a module's class name ("ReLU"); a function's or operator's name ("add")
  // "module", "function" (functions, methods and operators), "parameter" (a parameter read by a
  // forward), "input" (the forward's argument)
  std::string kind = "module";
  int occurrence = 0;  // a module call: how many calls of the same module came before it
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
// only the branch the model takes in eval mode remains. With `name_nodes`, every module that
// torch.fx traces through (graph/node_names.h) is inlined too, helper functions are, and every
// node torchvision lists is recorded under its name: leaf module calls, functions, operators,
// parameters, the input. Throws NativeError(MODEL_LOAD_FAILED) when the model has no forward
// taking one tensor.
ExpandedForward ExpandForward(const torch::jit::Module& root,
                              const std::function<bool(const std::string& path)>& expand,
                              bool name_nodes = false);

}  // namespace ltf

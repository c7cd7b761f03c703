// Operations on an expanded forward graph shared by the cut (graph/graph_cut.cc) and the summary
// (graph/summary.cc): naming targets, finding their values, removing what they do not need, and
// wrapping a graph in a module of its own.
#pragma once

#include <torch/script.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph_expand.h"

namespace ltf {

// A layer asked for: a module call as ListCalls names it.
struct Target {
  std::string name;  // as asked: "layer1.0.relu_1"
  std::string path;  // the module: "layer1.0.relu"
};

// Resolves a name by module paths alone: "layer3.1.conv2" names a module (its first call),
// "layer1.0.relu_1" the second call of "layer1.0.relu". Throws LAYER_NOT_FOUND, listing what
// exists around the name, or with `throw_if_missing` false returns an empty path.
Target ResolveTarget(const torch::jit::Module& root, const std::string& name, bool throw_if_missing = true);

// The expansion rule for naming `names` (with ExpandForward's name_nodes, which inlines what fx
// traces through): the ancestors of the names that are module paths, so that a module inside one
// fx keeps whole ("features.0.0" in a Conv2dNormActivation) can be cut at too.
std::function<bool(const std::string&)> ExpansionFor(const torch::jit::Module& root,
                                                     const std::vector<std::string>& names);

// The graph values that `names` name in a forward expanded with name_nodes: torchvision's name of
// a node first ("layer1.0.add", "flatten", "encoder.layers.encoder_layer_0.ln"), then a module
// path (its first call), then "<module>_<N>" (its N+1-th call). Throws LAYER_NOT_FOUND (no such
// node or call: the message lists what exists around the name) or UNSUPPORTED_CUT (never called,
// or no single tensor output).
std::vector<torch::jit::Value*> TargetValues(const ExpandedForward& expanded, const torch::jit::Module& root,
                                             const std::vector<std::string>& names);

// Whether anything that may share memory with `value` is used after `node` (other than by `node`):
// then an in-place change around `node` can matter.
bool AliasReadAfter(const torch::jit::Value* value, const torch::jit::Node* node);

// Removes what the outputs do not need: EliminateDeadCode, allowed to delete calls and checks
// (side effects) that nothing live depends on, which the default keeps. In eval mode those change
// nothing the outputs depend on; nodes that may write to live values stay.
void RemoveDeadCode(std::shared_ptr<torch::jit::Graph>& graph);

// Parameters the graph needs (read directly or by the calls it makes), each counted once; `kept`
// receives the top-level children it uses. The graph is not changed.
int64_t CountParameters(torch::jit::Graph& graph, const torch::jit::Module& root,
                        std::vector<std::string>* kept);

// A new module whose forward is `graph`, holding only the attributes of `root` that the graph
// reads, so that `root` and everything the cut left out can be released.
torch::jit::Module BuildModule(const torch::jit::Module& root,
                               const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace ltf

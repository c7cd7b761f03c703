// torchvision's names for the nodes of a forward (torchvision.models.feature_extraction,
// get_graph_node_names), computed from a TorchScript graph: which modules torch.fx treats as
// leaves, which function calls stay one node, what each TorchScript operator is called in an fx
// trace, and torchvision's rule for numbering repeated names.
#pragma once

#include <torch/script.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ltf {

// Whether torchvision's tracer keeps calls of this module as one node ("call_module") instead of
// tracing its forward: torch.nn's modules but Sequential, torchvision.ops' modules, and the
// torchvision classes that subclass one of those (TorchScript keeps no base classes: listed).
bool IsFxLeaf(const torch::jit::Module& module);

// The name of the fx node a prim::CallFunction makes, when torch.fx records the call as one node
// (torch's own Python functions, torch.nn.functional's among them, which dispatch
// __torch_function__; torchvision.ops; the functions torchvision wraps with torch.fx.wrap);
// nullopt when fx traces through the function, so that its operations are nodes of their own.
std::optional<std::string> KeptFunctionName(const torch::jit::Node* call);

// The names of the fx nodes one TorchScript operator stands for, one per output where it unpacks
// (x, y = pair: "getitem" twice); empty when fx makes no node of it (constants, list and tuple
// construction, casts, reads of modules and plain attributes) or when it is one step of an
// indexing expression whose last step carries the name.
std::vector<std::string> OperatorNodeNames(const torch::jit::Node* node);

// The fx name of a parameter read in a traced forward: its dotted path, lower snake case, with
// characters that cannot be in a Python name replaced ("features.1.0.layer_scale" ->
// "features_1_0_layer_scale").
std::string AttributeNodeName(const std::string& path);

// torchvision's numbering (NodePathTracer._get_node_qualname): a trailing "_N" is dropped, then
// the K-th repeat of a name gets "_K". Where an operation inside an if or a loop that TorchScript
// kept could have taken a name, later names of that stem cannot be known: they are refused.
class NodeNamer {
 public:
  // The name the next node with this qualified name gets; `known` false where it cannot be known.
  std::string Next(const std::string& qualname, bool* known);
  // An operation inside an if or loop would have used this stem.
  void MarkUnknown(const std::string& qualname);

 private:
  std::map<std::string, int> last_index_;
  std::set<std::string> unknown_;
};

}  // namespace ltf

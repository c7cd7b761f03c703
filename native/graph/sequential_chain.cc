#include "graph/sequential_chain.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>
#include <map>

#include "graph/graph_expand.h"

namespace ltf {

namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// True for nodes that may write to their inputs: in-place ATen operators (name ending in '_')
// and calls into other code, which may hold in-place operators of their own.
bool MayWrite(const Node* node) {
  const auto kind = node->kind();
  if (kind == c10::prim::CallMethod || kind == c10::prim::CallFunction) return true;
  if (!kind.is_aten()) return false;
  const std::string name = kind.toUnqualString();
  return !name.empty() && name.back() == '_' && name.rfind("__", 0) != 0;
}

}  // namespace

std::optional<std::vector<std::string>> FindChain(const torch::jit::Module& module,
                                                  const std::string& layer) {
  // The calls as the graph strategy resolves them (graph_expand.h), with only the module's own
  // methods inlined: the children stay calls, as they would run in a Sequential.
  const ExpandedForward expanded = ExpandForward(module, [](const std::string&) { return false; });
  const Graph& graph = *expanded.graph;
  const Value* input = graph.inputs().at(1);

  // Each top-level child's calls, and the child each call node runs.
  std::map<std::string, std::vector<const CallSite*>> calls_of;
  std::map<const Node*, std::string> child_of;
  for (const auto& call : expanded.calls) {
    calls_of[call.path].push_back(&call);
    if (call.output_index >= 0) child_of[graph.outputs().at(call.output_index)->node()] = call.path;
  }

  std::vector<std::string> chain;
  std::vector<const Value*> carried;  // the values that flow along the chain
  const Node* cut = nullptr;
  std::string current = layer;
  for (;;) {
    // Called exactly once, outside any if or loop, with one tensor in and one tensor out.
    const auto found = calls_of.find(current);
    if (found == calls_of.end() || found->second.size() != 1 || found->second.front()->output_index < 0) {
      return std::nullopt;
    }
    const Node* call = graph.outputs().at(found->second.front()->output_index)->node();
    if (call->kind() != c10::prim::CallMethod || call->inputs().size() != 2) return std::nullopt;
    if (cut == nullptr) cut = call;
    chain.push_back(current);
    const Value* argument = call->inputs().at(1);
    carried.push_back(argument);
    if (argument == input) break;
    // Its input must be the output of the child before it, and nothing else.
    const auto previous = child_of.find(argument->node());
    if (previous == child_of.end()) return std::nullopt;
    current = previous->second;
  }

  // A value on the chain that something else may modify before the cut runs (an in-place
  // operator, another call) could differ from what the Sequential sees.
  for (const Value* value : carried) {
    for (const auto& use : value->uses()) {
      const Node* user = use.user;
      const auto child = child_of.find(user);
      const bool on_chain =
          child != child_of.end() && std::find(chain.begin(), chain.end(), child->second) != chain.end();
      if (!on_chain && MayWrite(user) && user->isBefore(cut)) return std::nullopt;
    }
  }

  std::reverse(chain.begin(), chain.end());
  return chain;
}

}  // namespace ltf

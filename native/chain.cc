#include "chain.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>
#include <map>

#include "errors.h"
#include "module_tree.h"

namespace ltf {

namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// A guard against a forward whose own methods call each other without end.
constexpr int kMaxInlineRounds = 64;

bool IsCallOnSelf(const Node* node, const Value* self) {
  return node->kind() == c10::prim::CallMethod && node->inputs().at(0) == self;
}

// The name of the top-level child whose forward `node` calls, or "" when it is no such call.
std::string CalledChild(const Node* node, const Value* self) {
  if (node->kind() != c10::prim::CallMethod || !IsForward(node->s(c10::attr::name))) return "";
  const Node* get = node->inputs().at(0)->node();
  if (get->kind() != c10::prim::GetAttr || get->inputs().at(0) != self) return "";
  return get->s(c10::attr::name);
}

// True for nodes that may write to their inputs: in-place ATen operators (name ending in '_')
// and calls into other code, which may hold in-place operators of their own.
bool MayWrite(const Node* node) {
  const auto kind = node->kind();
  if (kind == c10::prim::CallMethod || kind == c10::prim::CallFunction) return true;
  if (!kind.is_aten()) return false;
  const std::string name = kind.toUnqualString();
  return !name.empty() && name.back() == '_' && name.rfind("__", 0) != 0;
}

std::string Describe(const Node* node, const Value* self) {
  if (node->kind() == c10::prim::CallMethod) {
    const std::string child = CalledChild(node, self);
    return child.empty() ? "a call of method '" + node->s(c10::attr::name) + "'" : "child '" + child + "'";
  }
  if (node->kind() == c10::prim::Param) return "an input of forward";
  return node->kind().toQualString();
}

// Inlines calls of the module's own methods, one level per round (torchvision's forward is a
// single call of _forward_impl), so that the calls of the children become visible while the
// children themselves stay calls.
void InlineOwnMethods(Graph& graph, const torch::jit::Module& module) {
  const Value* self = graph.inputs().at(0);
  for (int round = 0; round < kMaxInlineRounds; ++round) {
    Node* call = nullptr;
    for (Node* node : graph.nodes()) {
      if (IsCallOnSelf(node, self)) {
        call = node;
        break;
      }
    }
    if (call == nullptr) return;
    auto method = module.get_method(call->s(c10::attr::name));
    auto& function = torch::jit::toGraphFunction(method.function());
    torch::jit::inlineCallTo(call, &function, function.graph().get());
  }
  throw NativeError(code::kUnsupportedCut, "the model's forward nests calls of its own methods more than " +
                                               std::to_string(kMaxInlineRounds) + " deep");
}

}  // namespace

std::vector<std::string> ChainTo(const torch::jit::Module& module, const std::string& layer) {
  auto refuse = [&layer](const std::string& why) {
    return NativeError(code::kUnsupportedCut,
                       "cannot cut at '" + layer + "': " + why +
                           ", so the children up to it, run in a Sequential, would not give what '" + layer +
                           "' outputs inside the model; choose a layer whose input is the "
                           "output of the layer before it");
  };

  if (!module.find_method("forward")) {
    throw NativeError(code::kModelLoadFailed, "the model has no forward method");
  }
  // Work on a copy: the module's own graph must stay as it is.
  std::shared_ptr<Graph> graph =
      torch::jit::toGraphFunction(module.get_method("forward").function()).graph()->copy();
  InlineOwnMethods(*graph, module);

  const Value* self = graph->inputs().at(0);
  if (graph->inputs().size() != 2) {
    throw refuse("the forward takes " + std::to_string(graph->inputs().size() - 1) +
                 " inputs, not one tensor");
  }
  const Value* input = graph->inputs().at(1);

  // Every call of every child, control-flow blocks included, so that repeated calls are seen.
  std::map<std::string, std::vector<Node*>> calls;
  for (Node* node : torch::jit::findAllNodes(*graph, c10::prim::CallMethod, /*recurse=*/true)) {
    const std::string child = CalledChild(node, self);
    if (!child.empty()) calls[child].push_back(node);
  }

  std::vector<std::string> chain;
  std::vector<const Value*> carried;  // the values that flow along the chain
  const Node* cut = nullptr;
  std::string current = layer;
  while (true) {
    auto found = calls.find(current);
    if (found == calls.end()) throw refuse("the forward never calls '" + current + "'");
    if (found->second.size() != 1) {
      throw refuse("the forward calls '" + current + "' " + std::to_string(found->second.size()) + " times");
    }
    const Node* call = found->second.front();
    if (cut == nullptr) cut = call;
    if (call->owningBlock() != graph->block()) {
      throw refuse("the forward calls '" + current + "' inside an if or a loop");
    }
    if (call->inputs().size() != 2) {
      throw refuse("the forward calls '" + current + "' with " + std::to_string(call->inputs().size() - 1) +
                   " arguments");
    }
    if (call->outputs().size() != 1 || !call->output()->type()->cast<c10::TensorType>()) {
      throw refuse("'" + current + "' returns " + call->output()->type()->repr_str() + ", not a tensor");
    }
    chain.push_back(current);
    const Value* argument = call->inputs().at(1);
    carried.push_back(argument);
    if (argument == input) break;
    const std::string previous = CalledChild(argument->node(), self);
    if (previous.empty()) {
      throw refuse("the input of '" + current + "' is computed by " + Describe(argument->node(), self) +
                   ", not by a child alone");
    }
    current = previous;
  }

  // A value on the chain that something else may modify before the cut runs (an in-place
  // operator, another call) could differ from what the Sequential sees.
  for (const Value* value : carried) {
    for (const auto& use : value->uses()) {
      const Node* user = use.user;
      const bool on_chain = std::find(chain.begin(), chain.end(), CalledChild(user, self)) != chain.end();
      if (!on_chain && MayWrite(user) && user->isBefore(cut)) {
        throw refuse("the forward passes a value on the way to it to " + Describe(user, self) +
                     ", which may modify it");
      }
    }
  }

  std::reverse(chain.begin(), chain.end());
  return chain;
}

}  // namespace ltf

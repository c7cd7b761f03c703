#include "graph/graph_ops.h"

#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <unordered_set>

#include "common/errors.h"
#include "graph/module_tree.h"

namespace ltf {

namespace {

using torch::jit::Graph;
using torch::jit::Module;
using torch::jit::Node;
using torch::jit::Value;

// Dead-code elimination may delete nodes with side effects when nothing live depends on them:
// calls whose results are unused (kept otherwise, as a call may have side effects), and the
// input checks (prim::RaiseException) of modules whose outputs the cut does not need. A node
// that may write to a live value stays: the alias analysis sees to that.
constexpr auto kAllowDeletingSideEffects =
    torch::jit::DCESideEffectPolicy::ALLOW_DELETING_NODES_WITH_SIDE_EFFECTS;

// At most this many names in an error message; the rest are counted.
constexpr size_t kMaxNamesShown = 40;

std::string JoinShort(const std::vector<std::string>& names) {
  std::string joined;
  for (size_t i = 0; i < names.size() && i < kMaxNamesShown; ++i) {
    joined += (i ? ", " : "") + names[i];
  }
  if (names.size() > kMaxNamesShown) joined += ", ... (" + std::to_string(names.size()) + " in all)";
  return joined;
}

std::vector<std::string> ChildNames(const Module& module, const std::string& prefix) {
  std::vector<std::string> names;
  for (const auto& child : module.named_children()) {
    names.push_back(prefix.empty() ? child.name : prefix + "." + child.name);
  }
  return names;
}

bool HasUses(const Node* node) {
  return std::any_of(node->outputs().begin(), node->outputs().end(),
                     [](const Value* output) { return output->hasUses(); });
}

// Nodes whose outputs may share memory with their inputs: views and in-place operators (their
// schema says so), calls (anything may happen inside), and operators without a schema (lists,
// tuples), conservatively.
bool MayAlias(const Node* node) {
  if (node->kind() == c10::prim::Constant || node->kind() == c10::prim::GetAttr) return false;
  const auto* schema = node->maybeSchema();
  if (schema == nullptr) return true;
  return std::any_of(schema->returns().begin(), schema->returns().end(),
                     [](const c10::Argument& ret) { return ret.alias_info() != nullptr; });
}

// Whether any value that may share memory with `value` (through views, in-place operators and
// calls, either way) is used after `node`, other than by `node` itself.
bool AliasReadAfter(const Value* value, const Node* node, std::unordered_set<const Value*>& seen) {
  if (!seen.insert(value).second) return false;
  if (value->type()->cast<c10::ClassType>() || value->type()->cast<c10::FunctionType>()) return false;
  for (const auto& use : value->uses()) {
    const Node* user = use.user;
    if (user == node) continue;
    if (user->isAfter(node)) return true;
    if (MayAlias(user)) {
      for (const Value* output : user->outputs()) {
        if (AliasReadAfter(output, node, seen)) return true;
      }
    }
  }
  const Node* producer = value->node();
  if (producer->kind() != c10::prim::Param && MayAlias(producer)) {
    for (const Value* input : producer->inputs()) {
      if (AliasReadAfter(input, node, seen)) return true;
    }
  }
  return false;
}

// Replaces reads of plain module attributes (flags, numbers: not tensors, not modules) by their
// values. `training` among them: the alias analysis takes every batch_norm whose training flag is
// not a constant for a writer of its running statistics, which keeps dead ones alive.
void FoldPlainAttributes(Graph& graph, const Module& root) {
  const Value* self = graph.inputs().at(0);
  for (Node* get : torch::jit::findAllNodes(graph, c10::prim::GetAttr, /*recurse=*/true)) {
    const auto value = PlainAttribute(root, get, self);
    if (!value) continue;
    torch::jit::WithInsertPoint guard(get);
    try {
      get->output()->replaceAllUsesWith(graph.insertConstant(*value));
    } catch (const std::exception&) {  // insertConstant throws std::runtime_error, not c10::Error
      // a value that cannot be a constant: leave the read
    }
  }
}

}  // namespace

using torch::jit::Graph;
using torch::jit::Module;
using torch::jit::Node;
using torch::jit::Value;

Target ResolveTarget(const Module& root, const std::string& name, bool throw_if_missing) {
  if (!name.empty() && FindModule(root, name)) return {name, name};
  // "<module>_<N>", N from 1 without leading zeros: the (N+1)-th call of that module. Parsed by
  // hand: std::regex matches recursively, a stack frame per character (a 30,000-character name
  // overflowed the stack).
  const auto underscore = name.rfind('_');
  if (underscore != std::string::npos && underscore > 0 && underscore + 1 < name.size() &&
      name[underscore + 1] != '0' &&
      std::all_of(name.begin() + static_cast<std::ptrdiff_t>(underscore) + 1, name.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    const std::string module = name.substr(0, underscore);
    if (FindModule(root, module)) return {name, module};
  }
  if (!throw_if_missing) return {name, ""};
  // Say what exists around the name: the children of the deepest module its prefix names.
  std::string parent = name;
  std::optional<Module> found;
  while (!found) {
    const auto dot = parent.rfind('.');
    parent = dot == std::string::npos ? "" : parent.substr(0, dot);
    found = FindModule(root, parent);
  }
  const auto around = ChildNames(*found, parent);
  throw NativeError(code::kLayerNotFound,
                    "layer '" + name + "' is neither a module of the model nor a node torchvision lists; " +
                        (parent.empty() ? "its layers are: " : "'" + parent + "' holds: ") +
                        (around.empty() ? "(no modules)" : JoinShort(around)) +
                        " (Extractor.listLayers(model, { nested: true }) lists every name)");
}

namespace {

// A module call that `name` names by the module's path: ("layer1.0.relu", 0) for "layer1.0.relu",
// ("layer1.0.relu", 1) for "layer1.0.relu_1"; nullopt when it names no module.
std::optional<std::pair<std::string, int>> ModuleCallNamed(const Module& root, const std::string& name) {
  if (!name.empty() && FindModule(root, name)) return std::make_pair(name, 0);
  const Target target = ResolveTarget(root, name, /*throw_if_missing=*/false);
  if (target.path.empty()) return std::nullopt;
  const std::string index = target.name.substr(target.path.size() + 1);
  if (index.size() > 9) return std::make_pair(target.path, -1);  // more calls than any forward makes
  return std::make_pair(target.path, std::stoi(index));
}

}  // namespace

std::function<bool(const std::string&)> ExpansionFor(const Module& root,
                                                     const std::vector<std::string>& names) {
  std::vector<std::string> paths;
  for (const auto& name : names) {
    if (auto call = ModuleCallNamed(root, name)) paths.push_back(call->first);
  }
  return [paths](const std::string& path) {
    return std::any_of(paths.begin(), paths.end(),
                       [&](const std::string& target) { return IsBelow(target, path); });
  };
}

std::vector<Value*> TargetValues(const ExpandedForward& expanded, const Module& root,
                                 const std::vector<std::string>& names) {
  std::vector<Value*> values;
  for (const auto& name : names) {
    // torchvision's names first: that is what a name means in create_feature_extractor.
    auto call = std::find_if(expanded.calls.begin(), expanded.calls.end(),
                             [&](const CallSite& site) { return site.name == name; });
    if (call == expanded.calls.end()) {
      const auto module_call = ModuleCallNamed(root, name);
      if (!module_call) ResolveTarget(root, name);  // throws LAYER_NOT_FOUND, saying what exists around it
      call = std::find_if(expanded.calls.begin(), expanded.calls.end(), [&](const CallSite& site) {
        return site.kind == "module" && site.path == module_call->first &&
               site.occurrence == module_call->second;
      });
      if (call == expanded.calls.end()) {
        std::vector<std::string> calls;
        for (const auto& site : expanded.calls) {
          if (site.kind == "module" && site.path == module_call->first) calls.push_back(site.name);
        }
        if (calls.empty()) {
          throw NativeError(
              code::kUnsupportedCut,
              "cannot cut at '" + name + "': the model's forward never calls '" + module_call->first + "'");
        }
        throw NativeError(code::kLayerNotFound,
                          "layer '" + name + "' does not exist: '" + module_call->first + "' is called " +
                              std::to_string(calls.size()) + " time(s), as: " + JoinShort(calls));
      }
    }
    if (call->output_index < 0) {
      throw NativeError(code::kUnsupportedCut, "cannot cut at '" + name + "': " + call->why_not);
    }
    values.push_back(expanded.graph->outputs().at(call->output_index));
  }
  return values;
}

bool AliasReadAfter(const Value* value, const Node* node) {
  std::unordered_set<const Value*> seen;
  return AliasReadAfter(value, node, seen);
}

void RemoveDeadCode(std::shared_ptr<Graph>& graph) {
  torch::jit::EliminateDeadCode(graph, kAllowDeletingSideEffects);
}

int64_t CountParameters(Graph& cut, const Module& root, std::vector<std::string>* kept) {
  for (const Node* node : cut.nodes()) {
    if (node->kind() == c10::prim::GetAttr && node->inputs().at(0) == cut.inputs().at(0) &&
        ModulePath(node->output(), cut.inputs().at(0)) &&
        std::find(kept->begin(), kept->end(), node->s(c10::attr::name)) == kept->end()) {
      kept->push_back(node->s(c10::attr::name));
    }
  }
  // On a fully inlined copy the alias analysis sees through the calls, so that dead code kept
  // beside an in-place operator goes, and the parameter reads left are exactly those needed.
  auto graph = cut.copy();
  torch::jit::Inline(*graph);
  FoldPlainAttributes(*graph, root);
  torch::jit::ConstantPropagation(graph);
  torch::jit::EliminateDeadCode(graph, kAllowDeletingSideEffects);
  const Value* self = graph->inputs().at(0);
  std::unordered_set<const c10::TensorImpl*> seen;
  int64_t count = 0;
  for (Node* get : torch::jit::findAllNodes(*graph, c10::prim::GetAttr, /*recurse=*/true)) {
    const auto owner = ModulePath(get->inputs().at(0), self);
    if (!owner) continue;
    const Module module = ModuleAt(root, *owner);
    const std::string& name = get->s(c10::attr::name);
    const auto slot = module.type()->findAttributeSlot(name);
    if (!slot) continue;
    const c10::IValue value = module._ivalue()->getSlot(*slot);
    if (module.type()->is_parameter(*slot) && value.isTensor() &&
        seen.insert(value.toTensor().unsafeGetTensorImpl()).second) {
      count += value.toTensor().numel();
    }
  }
  return count;
}

Module BuildModule(const Module& root, const std::shared_ptr<Graph>& graph) {
  Value* self = graph->inputs().at(0);
  auto unit = root._ivalue()->compilation_unit();
  Module cut(c10::QualifiedName("__torch__.libtorch_features.CutModel"), unit, /*shouldMangle=*/true);
  cut.register_attribute("training", c10::BoolType::get(), false);
  for (const auto& use : self->uses()) {
    const Node* user = use.user;
    if (user->kind() != c10::prim::GetAttr) {
      throw NativeError(code::kUnsupportedCut, "the model's forward passes the model object itself to " +
                                                   std::string(user->kind().toQualString()) +
                                                   ", which a cut cannot keep");
    }
    const std::string& name = user->s(c10::attr::name);
    if (cut.hasattr(name)) continue;
    const size_t slot = root.type()->getAttributeSlot(name);
    const c10::IValue value = root._ivalue()->getSlot(slot);
    if (value.isObject() && value.toObjectRef().type()->is_module()) {
      cut.register_module(name, Module(value.toObject()));
    } else {
      const bool parameter = root.type()->is_parameter(slot);
      cut.register_attribute(name, root.type()->getAttribute(slot), value, parameter,
                             /*is_buffer=*/!parameter && value.isTensor());
    }
  }
  self->setType(cut.type());
  auto* forward = unit->create_function(c10::QualifiedName(*cut.type()->name(), "forward"), graph);
  cut.type()->addMethod(forward);
  return cut;
}

}  // namespace ltf

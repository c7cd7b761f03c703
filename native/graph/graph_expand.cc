#include "graph/graph_expand.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>

#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "common/errors.h"
#include "graph/module_tree.h"
#include "graph/node_names.h"

namespace ltf {

namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// A guard against models whose methods call each other without end: far above the few thousand
// calls of the largest torchvision CNNs.
constexpr int kMaxInlinedCalls = 100000;

// How deep a condition is followed back to constants, and how deep ifs and loops may nest: the
// conditions torchvision folds are a few operations deep. Beyond, a condition is left unfolded
// (its branch kept) and nesting is refused, rather than recursing once per node of the model's
// code (a 50,000-deep chain of `not` overflowed the stack).
constexpr int kMaxFoldDepth = 256;
constexpr int kMaxBlockDepth = 256;

// The module whose forward a node of the expanded graph comes from, as torch.fx sees it.
struct Scope {
  std::string path;      // "" for the model's own forward
  bool in_leaf = false;  // inside a module fx keeps as one node: fx names nothing in it
};

class Expander {
 public:
  Expander(const torch::jit::Module& root, std::shared_ptr<Graph> graph,
           const std::function<bool(const std::string&)>& expand, bool name_nodes)
      : root_(root),
        graph_(std::move(graph)),
        self_(graph_->inputs().at(0)),
        expand_(expand),
        name_nodes_(name_nodes) {}

  std::vector<CallSite> Run() {
    if (name_nodes_) RecordInput();
    ScanBlock(graph_->block(), /*top_level=*/true);
    return std::move(calls_);
  }

 private:
  void ScanBlock(Block* block, bool top_level, int depth = 0) {
    if (depth > kMaxBlockDepth) {
      throw NativeError(code::kUnsupportedCut, "the model's forward nests ifs and loops more than " +
                                                   std::to_string(kMaxBlockDepth) + " deep");
    }
    Node* node = *block->nodes().begin();
    while (node != block->return_node()) {
      if (node->kind() == c10::prim::If) {
        if (auto next = FoldIf(node)) {
          node = *next;
          continue;
        }
      }
      const Scope scope = ScopeOf(node);  // a copy: inlining adds to the map
      if (node->kind() == c10::prim::CallMethod) {
        const auto path = ModulePath(node->inputs().at(0), self_);
        if (path) {
          const std::string method = node->s(c10::attr::name);
          const bool forward = !path->empty() && IsForward(method);
          const bool leaf = forward && name_nodes_ && IsFxLeaf(ModuleAt(root_, *path));
          if (forward) Record(node, *path, top_level, scope, leaf);
          if (path->empty() || expand_(*path) || (name_nodes_ && !leaf)) {
            // A module's forward is a scope of its own; another method runs in its caller's, as fx
            // traces it.
            const Scope inner = forward ? Scope{*path, scope.in_leaf || leaf} : scope;
            node = InlineAndScope(node, inner, [&] { Inline(node, *path, method); });
            continue;
          }
        }
      } else if (name_nodes_ && node->kind() == c10::prim::CallFunction) {
        if (auto name = KeptFunctionName(node)) {
          if (!scope.in_leaf) RecordNode(node, {*name}, "function", top_level, scope);
          node = node->next();
          continue;
        }
        if (auto* function = CalledFunction(node)) {
          node = InlineAndScope(node, scope, [&] { InlineFunction(node, function); });
          continue;
        }
      } else if (name_nodes_ && !scope.in_leaf) {
        if (node->kind() == c10::prim::GetAttr) {
          RecordParameter(node, top_level, scope);
        } else {
          RecordNode(node, OperatorNodeNames(node), "function", top_level, scope);
        }
      }
      for (Block* inner : node->blocks()) ScanBlock(inner, /*top_level=*/false, depth + 1);
      node = node->next();
    }
  }

  const Scope& ScopeOf(const Node* node) const {
    const auto found = scope_.find(node);
    return found == scope_.end() ? root_scope_ : found->second;
  }

  // Inlines the call `node` with `inline_call`, gives the nodes it brings `scope`, and returns the
  // first of them (or what followed the call, when the body was empty).
  template <typename F>
  Node* InlineAndScope(Node* node, const Scope& scope, F inline_call) {
    Node* before = node->prev();
    Node* after = node->next();
    inline_call();
    if (name_nodes_) {
      for (Node* added = before->next(); added != after; added = added->next()) SetScope(added, scope);
    }
    return before->next();
  }

  // The node and everything inside its blocks; with a stack of its own, as a hostile model may
  // nest blocks deeper than this thread's stack would hold (ScanBlock refuses them later).
  void SetScope(Node* node, const Scope& scope) {
    std::vector<Node*> pending{node};
    while (!pending.empty()) {
      Node* current = pending.back();
      pending.pop_back();
      scope_[current] = scope;
      for (Block* block : current->blocks()) {
        for (Node* inner : block->nodes()) pending.push_back(inner);
      }
    }
  }

  void Record(Node* call, const std::string& path, bool top_level, const Scope& scope, bool leaf) {
    const int occurrence = seen_[path]++;
    CallSite site;
    site.path = path;
    site.occurrence = occurrence;
    site.name = occurrence == 0 ? path : path + "_" + std::to_string(occurrence);
    site.type = TypeName(ModuleAt(root_, path));
    bool known = true;
    if (leaf && !scope.in_leaf) {
      // torchvision names the calls of fx's leaf modules with the rule of every other node.
      if (top_level) {
        site.name = namer_.Next(path, &known);
      } else {
        namer_.MarkUnknown(path);
      }
    }
    if (!top_level) {
      site.why_not = "it is called inside an if or a loop of the forward, so it has no single output";
    } else if (!known) {
      site.why_not = UnknownName(path);
    } else if (call->outputs().size() != 1 || !call->output()->type()->cast<c10::TensorType>()) {
      site.why_not = "it returns " + call->output()->type()->repr_str() + ", not a tensor";
    } else {
      site.output_index = static_cast<int>(graph_->outputs().size());
      graph_->registerOutput(call->output());
    }
    calls_.push_back(std::move(site));
  }

  // The forward's argument: fx's placeholder, named after it.
  void RecordInput() {
    Value* input = graph_->inputs().at(1);
    const std::string name = input->hasDebugName() ? input->debugNameBase() : "x";
    RecordValue(name, input, "input", name, /*top_level=*/true, root_scope_);
  }

  // A parameter that a traced forward reads itself (ConvNeXt's layer_scale, ViT's class_token):
  // fx's get_attr, named once, at its first read.
  void RecordParameter(Node* get, bool top_level, const Scope& scope) {
    const auto owner = ModulePath(get->inputs().at(0), self_);
    if (!owner || !get->output()->type()->cast<c10::TensorType>()) return;
    const torch::jit::Module module = ModuleAt(root_, *owner);
    const std::string& attribute = get->s(c10::attr::name);
    const auto slot = module.type()->findAttributeSlot(attribute);
    if (!slot || !module.type()->is_parameter(*slot)) return;
    const std::string path = owner->empty() ? attribute : *owner + "." + attribute;
    if (!parameters_.insert(path).second) return;
    RecordValue(Qualify(scope, AttributeNodeName(path)), get->output(), "parameter", "Parameter", top_level,
                scope);
  }

  // A function or operator node: one name per entry of `names`; where there is one name more than
  // outputs, the first names the tuple the others unpack.
  void RecordNode(Node* node, const std::vector<std::string>& names, const std::string& kind, bool top_level,
                  const Scope& scope) {
    const size_t outputs = node->outputs().size();
    const size_t tuples = names.size() > outputs ? names.size() - outputs : 0;  // 0 or 1
    for (size_t i = 0; i < names.size(); ++i) {
      Value* value = nullptr;
      if (names.size() == 1 && outputs == 1) {
        value = node->output();
      } else if (names.size() > 1 && i >= tuples) {
        value = node->outputs()[i - tuples];
      }
      RecordValue(Qualify(scope, names[i]), value, kind, names[i], top_level, scope);
    }
  }

  static std::string Qualify(const Scope& scope, const std::string& name) {
    return scope.path.empty() ? name : scope.path + "." + name;
  }

  void RecordValue(const std::string& qualname, Value* value, const std::string& kind,
                   const std::string& type, bool top_level, const Scope& scope) {
    if (!top_level) {
      namer_.MarkUnknown(qualname);
      return;
    }
    bool known = true;
    CallSite site;
    site.name = namer_.Next(qualname, &known);
    site.path = scope.path;
    site.type = type;
    site.kind = kind;
    if (!known) {
      site.why_not = UnknownName(qualname);
    } else if (value == nullptr) {
      site.why_not = "it yields no single tensor (a tuple, or nothing)";
    } else if (!value->type()->cast<c10::TensorType>()) {
      site.why_not = "it yields " + value->type()->repr_str() + ", not a tensor";
    } else {
      site.output_index = static_cast<int>(graph_->outputs().size());
      graph_->registerOutput(value);
    }
    calls_.push_back(std::move(site));
  }

  static std::string UnknownName(const std::string& qualname) {
    return "its torchvision name cannot be known: a node named like '" + qualname +
           "' before it runs inside an if or a loop that TorchScript keeps (torch.fx would unroll it or "
           "fail)";
  }

  static torch::jit::GraphFunction* CalledFunction(Node* call) {
    const auto type = call->inputs().at(0)->type()->cast<c10::FunctionType>();
    return type && type->function() ? torch::jit::tryToGraphFunction(*type->function()) : nullptr;
  }

  // A helper function that fx traces through (ShuffleNet's channel_shuffle): its operations are
  // nodes of the caller's forward.
  void InlineFunction(Node* call, torch::jit::GraphFunction* function) {
    if (++inlined_ > kMaxInlinedCalls) {
      throw NativeError(code::kUnsupportedCut,
                        "the model's forward nests more than " + std::to_string(kMaxInlinedCalls) + " calls");
    }
    call->removeInput(0);
    torch::jit::inlineCallTo(call, function, function->graph().get());
  }

  void Inline(Node* call, const std::string& path, const std::string& method) {
    if (++inlined_ > kMaxInlinedCalls) {
      throw NativeError(code::kUnsupportedCut,
                        "the model's forward nests more than " + std::to_string(kMaxInlinedCalls) + " calls");
    }
    auto& function = torch::jit::toGraphFunction(ModuleAt(root_, path).get_method(method).function());
    torch::jit::inlineCallTo(call, &function, function.graph().get());
  }

  // The value of `value` when it depends only on constants and on plain module attributes
  // (flags and numbers, never tensors), folding what it can into constants on the way.
  std::optional<c10::IValue> Fold(Value* value, int depth = 0) {
    if (auto constant = torch::jit::toIValue(value)) return constant;
    if (depth > kMaxFoldDepth) return std::nullopt;
    Node* node = value->node();
    if (node->kind() == c10::prim::GetAttr) return FoldAttribute(node);
    if (node->kind() == c10::prim::Param || !node->blocks().empty() || node->hasSideEffects()) {
      return std::nullopt;
    }
    for (Value* input : node->inputs()) {
      if (!Fold(input, depth + 1)) return std::nullopt;
    }
    const auto outputs = torch::jit::runNodeIfInputsAreConstant(node);
    if (!outputs || outputs->size() != node->outputs().size()) return std::nullopt;
    return Replace(node, *outputs, value);
  }

  std::optional<c10::IValue> FoldAttribute(Node* get) {
    const auto attribute = PlainAttribute(root_, get, self_);
    if (!attribute) return std::nullopt;
    return Replace(get, {*attribute}, get->output());
  }

  // Replaces the outputs of `node` by constants; returns the constant for `wanted`.
  std::optional<c10::IValue> Replace(Node* node, const std::vector<c10::IValue>& values, Value* wanted) {
    std::optional<c10::IValue> result;
    torch::jit::WithInsertPoint guard(node);
    for (size_t i = 0; i < values.size(); ++i) {
      auto constant = graph_->insertConstant(values[i]);  // throws for types that cannot be constants
      node->outputs()[i]->replaceAllUsesWith(constant);
      if (node->outputs()[i] == wanted) result = values[i];
    }
    return result;
  }

  // Replaces an if whose condition folds to a constant by the branch it takes; returns the node
  // to scan next, or nullopt when the condition is not constant.
  std::optional<Node*> FoldIf(Node* node) {
    std::optional<c10::IValue> condition;
    try {
      condition = Fold(node->inputs().at(0));
    } catch (const std::exception&) {  // insertConstant throws std::runtime_error, not c10::Error
      return std::nullopt;             // an attribute of a type that cannot be a constant: keep the branch
    }
    if (!condition || !condition->isBool()) return std::nullopt;
    Block* taken = node->blocks().at(condition->toBool() ? 0 : 1);
    Node* before = node->prev();
    for (auto it = taken->nodes().begin(); it != taken->nodes().end();) {
      Node* moved = *it;
      ++it;
      moved->moveBefore(node);
    }
    for (size_t i = 0; i < node->outputs().size(); ++i) {
      node->outputs()[i]->replaceAllUsesWith(taken->outputs()[i]);
    }
    node->destroy();
    return before->next();
  }

  const torch::jit::Module& root_;
  std::shared_ptr<Graph> graph_;
  const Value* self_;
  const std::function<bool(const std::string&)>& expand_;
  const bool name_nodes_;
  std::map<std::string, int> seen_;
  std::vector<CallSite> calls_;
  int inlined_ = 0;
  const Scope root_scope_;
  std::unordered_map<const Node*, Scope> scope_;
  NodeNamer namer_;
  std::set<std::string> parameters_;  // parameters already named
};

}  // namespace

ExpandedForward ExpandForward(const torch::jit::Module& root,
                              const std::function<bool(const std::string& path)>& expand, bool name_nodes) {
  if (!root.find_method("forward")) {
    throw NativeError(code::kModelLoadFailed, "the model has no forward method");
  }
  // A copy: the module's own graph stays as it is.
  auto graph = torch::jit::toGraphFunction(root.get_method("forward").function()).graph()->copy();
  if (graph->inputs().size() != 2) {
    throw NativeError(code::kUnsupportedCut,
                      "the model's forward takes " + std::to_string(graph->inputs().size() - 1) +
                          " inputs; only models whose forward takes one tensor can be cut");
  }
  ExpandedForward expanded;
  expanded.calls = Expander(root, graph, expand, name_nodes).Run();
  expanded.graph = std::move(graph);
  return expanded;
}

}  // namespace ltf

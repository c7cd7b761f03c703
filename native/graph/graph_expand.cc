#include "graph/graph_expand.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>

#include <map>
#include <optional>

#include "common/errors.h"
#include "graph/module_tree.h"

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

class Expander {
 public:
  Expander(const torch::jit::Module& root, std::shared_ptr<Graph> graph,
           const std::function<bool(const std::string&)>& expand)
      : root_(root), graph_(std::move(graph)), self_(graph_->inputs().at(0)), expand_(expand) {}

  std::vector<CallSite> Run() {
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
      if (node->kind() == c10::prim::CallMethod) {
        const auto path = ModulePath(node->inputs().at(0), self_);
        if (path) {
          const std::string method = node->s(c10::attr::name);
          if (!path->empty() && IsForward(method)) Record(node, *path, top_level);
          if (path->empty() || expand_(*path)) {
            Node* before = node->prev();
            Inline(node, *path, method);
            node = before->next();  // the first node of the inlined body
            continue;
          }
        }
      }
      for (Block* inner : node->blocks()) ScanBlock(inner, /*top_level=*/false, depth + 1);
      node = node->next();
    }
  }

  void Record(Node* call, const std::string& path, bool top_level) {
    const int occurrence = seen_[path]++;
    CallSite site;
    site.path = path;
    site.name = occurrence == 0 ? path : path + "_" + std::to_string(occurrence);
    site.type = TypeName(ModuleAt(root_, path));
    if (!top_level) {
      site.why_not = "it is called inside an if or a loop of the forward, so it has no single output";
    } else if (call->outputs().size() != 1 || !call->output()->type()->cast<c10::TensorType>()) {
      site.why_not = "it returns " + call->output()->type()->repr_str() + ", not a tensor";
    } else {
      site.output_index = static_cast<int>(graph_->outputs().size());
      graph_->registerOutput(call->output());
    }
    calls_.push_back(std::move(site));
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
  std::map<std::string, int> seen_;
  std::vector<CallSite> calls_;
  int inlined_ = 0;
};

}  // namespace

ExpandedForward ExpandForward(const torch::jit::Module& root,
                              const std::function<bool(const std::string& path)>& expand) {
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
  expanded.calls = Expander(root, graph, expand).Run();
  expanded.graph = std::move(graph);
  return expanded;
}

}  // namespace ltf

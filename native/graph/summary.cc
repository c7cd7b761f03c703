#include "graph/summary.h"

#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "graph/graph_expand.h"
#include "graph/graph_ops.h"
#include "graph/module_tree.h"

namespace ltf {

namespace {

using torch::jit::Node;
using torch::jit::Value;

// torchsummary hooks every module but these containers (and the model itself).
const std::set<std::string> kContainers = {"Sequential", "ModuleList", "ModuleDict"};

// The nodes the values are computed from (blocks included).
std::unordered_set<const Node*> Producers(const std::vector<Value*>& values) {
  std::unordered_set<const Node*> seen;
  std::vector<const Node*> stack;
  for (const Value* value : values) stack.push_back(value->node());
  while (!stack.empty()) {
    const Node* node = stack.back();
    stack.pop_back();
    if (!seen.insert(node).second) continue;
    for (const Value* input : node->inputs()) stack.push_back(input->node());
    for (const auto* block : node->blocks()) {
      for (const Node* inner : block->nodes()) stack.push_back(inner);
      stack.push_back(block->return_node());
    }
  }
  return seen;
}

size_t Depth(const std::string& path) { return std::count(path.begin(), path.end(), '.'); }

}  // namespace

Summary Summarize(const torch::jit::Module& root, const std::vector<std::string>& names,
                  const std::vector<int64_t>& input_shape) {
  // Every container is expanded, so that every module call has a row; nodes are named as the cut
  // names them.
  const auto below_targets = ExpansionFor(root, names);
  auto expanded = ExpandForward(
      root, [&](const std::string& path) { return HasChildren(ModuleAt(root, path)) || below_targets(path); },
      /*name_nodes=*/true);
  auto& graph = expanded.graph;
  std::vector<Value*> values = TargetValues(expanded, root, names);

  // The rows: calls the targets depend on, ordered as their outputs complete (a block after what
  // it contains; a child before the block whose output it also is), as torchsummary's hooks fire.
  const auto needed = Producers(values);
  std::unordered_map<const Node*, size_t> position;
  for (const Node* node : graph->block()->nodes()) position.emplace(node, position.size());
  struct Row {
    const CallSite* call;
    Value* value;
  };
  std::vector<Row> rows;
  for (const auto& call : expanded.calls) {
    if (call.kind != "module" || call.output_index < 0 || kContainers.count(call.type)) continue;
    Value* value = graph->outputs().at(call.output_index);
    if (needed.count(value->node())) rows.push_back({&call, value});
  }
  std::stable_sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
    const size_t pa = position.at(a.value->node()), pb = position.at(b.value->node());
    return pa != pb ? pa < pb : Depth(a.call->path) > Depth(b.call->path);
  });

  // One forward returning the targets and every row's value.
  while (!graph->outputs().empty()) graph->eraseOutput(graph->outputs().size() - 1);
  std::vector<Value*> outputs = values;
  for (const auto& row : rows) outputs.push_back(row.value);
  graph->registerOutput(graph->insertNode(graph->createTuple(outputs))->output());
  RemoveDeadCode(graph);

  Summary summary;
  std::vector<std::string> kept;
  summary.total_parameters = CountParameters(*graph, root, &kept);
  torch::jit::Module module = BuildModule(root, graph);
  module.eval();
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  c10::InferenceMode guard;
  const c10::IValue result = module.forward({torch::zeros(shape)});
  const auto& results = result.toTupleRef().elements();
  for (size_t i = 0; i < values.size(); ++i)
    summary.output_shapes.push_back(results[i].toTensor().sizes().vec());
  for (size_t i = 0; i < rows.size(); ++i) {
    SummaryRow row{rows[i].call->name, rows[i].call->type,
                   results[values.size() + i].toTensor().sizes().vec(), 0};
    for (const auto& parameter : ModuleAt(root, rows[i].call->path).parameters(/*recurse=*/false)) {
      row.parameters += parameter.numel();
    }
    summary.rows.push_back(std::move(row));
  }
  return summary;
}

}  // namespace ltf

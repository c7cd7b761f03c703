#include "graph/graph_cut.h"

#include <torch/csrc/jit/ir/ir.h>

#include <unordered_set>

#include "graph/graph_ops.h"
#include "graph/module_tree.h"
#include "graph/optimized_graph.h"
#include "graph/placement.h"
#include "graph/pointwise_fusion.h"
#include "onednn/onednn_allocator.h"
#include "runtime/onednn_caches.h"
#include "winograd/winograd_op.h"

namespace ltf {

namespace {

using torch::jit::Module;
using torch::jit::Node;
using torch::jit::Value;

// Each output is a clone of the value the call produced, so that an in-place operation the model
// does later (ResNet's `out += identity` after bn2) cannot change it. Where nothing else reads the
// value, or what it was computed from, the clone is dropped again.
void DropNeedlessClones(const std::vector<Node*>& clones) {
  for (Node* clone : clones) {
    Value* source = clone->inputs().at(0);
    if (!AliasReadAfter(source, clone)) {
      clone->output()->replaceAllUsesWith(source);
      clone->destroy();
    }
  }
}

// Whether `value` is computed from `input`, through the nodes that produce it and the nodes inside
// their ifs and loops (which read outer values without naming them as inputs).
bool DependsOn(const Value* value, const Value* input) {
  std::vector<const Value*> pending{value};
  std::unordered_set<const Node*> seen;
  while (!pending.empty()) {
    const Value* current = pending.back();
    pending.pop_back();
    if (current == input) return true;
    std::vector<const Node*> nodes{current->node()};
    while (!nodes.empty()) {
      const Node* node = nodes.back();
      nodes.pop_back();
      if (!seen.insert(node).second) continue;
      for (const Value* read : node->inputs()) pending.push_back(read);
      for (const auto* block : node->blocks()) {
        for (const Node* inner : block->nodes()) nodes.push_back(inner);
        nodes.push_back(block->return_node());
      }
    }
  }
  return false;
}

}  // namespace

std::vector<CallSite> ListCalls(const Module& root) {
  auto expanded = ExpandForward(
      root, [&root](const std::string& path) { return HasChildren(ModuleAt(root, path)); },
      /*name_nodes=*/true);
  std::vector<CallSite> cuttable;
  for (auto& call : expanded.calls) {
    if (call.output_index >= 0) cuttable.push_back(std::move(call));
  }
  return cuttable;
}

GraphCut CutGraph(const Module& root, const std::vector<std::string>& names, torch::Device device,
                  torch::Dtype dtype, bool channels_last, bool optimize, bool winograd) {
  // Every node torchvision names, so that names are given as it gives them.
  auto expanded = ExpandForward(root, ExpansionFor(root, names), /*name_nodes=*/true);
  auto& graph = expanded.graph;
  const std::vector<Value*> values = TargetValues(expanded, root, names);

  // The outputs become a tuple of (clones of) the targets' values.
  while (!graph->outputs().empty()) graph->eraseOutput(graph->outputs().size() - 1);
  std::vector<Node*> clones;
  std::vector<Value*> cloned;
  for (Value* value : values) {
    torch::jit::WithInsertPoint after(value->node()->next());
    Value* copy = graph->insert(c10::aten::clone, {value});
    clones.push_back(copy->node());
    cloned.push_back(copy);
  }
  graph->registerOutput(graph->insertNode(graph->createTuple(cloned))->output());
  RemoveDeadCode(graph);
  DropNeedlessClones(clones);

  GraphCut cut;
  for (const Value* value : graph->outputs().at(0)->node()->inputs()) {
    cut.input_free.push_back(!DependsOn(value, graph->inputs().at(1)));
  }
  cut.parameter_count = CountParameters(*graph, root, &cut.kept);
  Module module = BuildModule(root, graph);
  // optimize on the CPU in a reduced precision folds batch norms into the convolutions in float32,
  // then casts (OptimizedGraph): folded in bfloat16 the weights lose what the plain cut keeps.
  const bool cast_after_folding = optimize && device.is_cpu() && dtype != torch::kFloat;
  Place(module, device, cast_after_folding ? torch::kFloat : dtype, channels_last);
  module.eval();
  if (optimize) {
    // optimize on the CPU runs on oneDNN (MKLDNN) tensors: their caching allocator goes in now,
    // the first time a process needs it, not when the addon loads.
    if (device.is_cpu()) InstallOneDnnAllocator();
    OptimizeSettings settings;
    settings.onednn_fusion = device.is_cpu() && dtype == torch::kFloat && OneDnnFusionEnabled();
    settings.winograd = winograd;
    settings.pointwise_fusion = device.is_cpu() && dtype == torch::kBFloat16 && PointwiseFusionEnabled();
    settings.float32_fusion = device.is_cpu() && dtype == torch::kFloat && winograd &&
                              PointwiseFusionEnabled() && WinogradAvailable();
    settings.tolerance = OptimizeTolerance(dtype);
    if (cast_after_folding) settings.cast_to = dtype;
    settings.channels_last = channels_last;
    if (device.is_cpu() && !OneDnnCacheState().usable) settings.skip_full = OneDnnCacheState().reason;
    // Asked for explicitly: where freezing fails, the error says why it cannot be done.
    cut.optimized = std::make_shared<OptimizedGraph>(module, settings);
    return cut;
  }
  // Freezing inlines the calls and keeps only the parameters the cut reads as constants, so the
  // modules left out are released with `root`. No conv-bn folding: the numbers stay those of the
  // model. Where freezing fails, the unfrozen module still runs.
  try {
    cut.module = FreezeAt(module, OptimizeLevel::kPlain, OptimizeSettings(), nullptr);
  } catch (const c10::Error&) {
    cut.module = module;
  }
  return cut;
}

}  // namespace ltf

#include "onednn/onednn_conv.h"

#include <cstdlib>
#include <cstring>

#ifdef LTF_WITH_ONEDNN

#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <optional>
#include <unordered_set>

#include "graph/node_patterns.h"
#include "onednn/onednn_op.h"

namespace ltf {

namespace {

using torch::jit::AliasDb;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

const c10::Symbol kMkldnnConv = c10::Symbol::fromQualString("prim::mkldnn_convolution");
const c10::Symbol kMkldnnConstant = c10::Symbol::fromQualString("prim::ConstantMKLDNNTensor");
const c10::Symbol kBroadcast = c10::Symbol::fromQualString("prim::BroadcastMKLDNNTensors");
const c10::Symbol kHardTanh = c10::Symbol::fromQualString("prim::MKLDNNHardTanh_");

std::optional<at::Tensor> ConstantTensor(Value* value) {
  if (value->node()->kind() == kMkldnnConstant) return value->node()->t(c10::attr::value);
  auto constant = torch::jit::toIValue(value);
  if (constant && constant->isTensor()) return constant->toTensor();
  return std::nullopt;
}

std::optional<std::vector<int64_t>> ConstantPair(Value* value) {
  auto constant = torch::jit::toIValue(value);
  if (!constant || !constant->isIntList()) return std::nullopt;
  auto ints = constant->toIntVector();
  if (ints.size() != 2) return std::nullopt;
  return ints;
}

// A bias constant (MKLDNN, as optimize_for_inference leaves it) as a plain float32 ideep tensor
// of its own: the layout the primitives take it in.
std::optional<ideep::tensor> PlainBias(const at::Tensor& bias) {
  if (!bias.is_mkldnn() || bias.scalar_type() != at::kFloat || bias.dim() != 1) return std::nullopt;
  ideep::tensor plain(bias.sizes().vec(), dnnl::memory::data_type::f32, dnnl::memory::format_tag::a);
  at::AutoDispatchBelowADInplaceOrView below_autograd;  // itensor_from_mkldnn asserts it
  at::native::itensor_from_mkldnn(bias).reorder_to(plain);
  return plain;
}

// What the rewrite needs from a convolution node; nullopt for the ones it leaves alone.
std::optional<ConvSpec> ReadConv(Node* conv, bool winograd) {
  // prim::mkldnn_convolution(input, weight, bias, stride, padding, dilation, groups)
  if (conv->inputs().size() != 7) return std::nullopt;
  auto weight = ConstantTensor(conv->input(1));
  auto groups = torch::jit::toIValue(conv->input(6));
  auto stride = ConstantPair(conv->input(3));
  auto padding = ConstantPair(conv->input(4));
  auto dilation = ConstantPair(conv->input(5));
  // Grouped (depthwise) convolutions keep LibTorch's kernels: their weights are laid out apart.
  if (!weight || weight->dim() != 4 || !groups || !groups->isInt() || groups->toInt() != 1 || !stride ||
      !padding || !dilation) {
    return std::nullopt;
  }
  // The frozen graph's own constant, packed by optimize_for_inference: kept, not copied.
  if (!weight->is_mkldnn() || weight->scalar_type() != at::kFloat) return std::nullopt;
  ConvSpec spec;
  spec.weights = *weight;
  if (!conv->input(2)->type()->cast<c10::NoneType>()) {
    auto bias = ConstantTensor(conv->input(2));
    auto plain = bias ? PlainBias(*bias) : std::nullopt;
    if (!plain) return std::nullopt;
    spec.bias = std::move(*plain);
  }
  spec.stride = *stride;
  spec.padding = *padding;
  spec.dilation = *dilation;
  // oneDNN's Winograd: 3x3 kernels, stride 1, no dilation. Where it has no kernel for the CPU or
  // the shape, the operator falls back to the direct algorithm.
  spec.winograd = winograd && weight->size(2) == 3 && weight->size(3) == 3 &&
                  spec.stride == std::vector<int64_t>{1, 1} && spec.dilation == std::vector<int64_t>{1, 1};
  return spec;
}

// The nodes folded into a convolution, and the value that now stands for all of them.
struct PostOpMatch {
  Value* residual = nullptr;
  Activation activation;
  std::vector<Node*> consumed;  // in graph order
  Value* result = nullptr;
};

// `relu(conv(x) + residual)` in the frozen graph reads:
//   %c = prim::mkldnn_convolution(%x, ...)
//   %a, %b = prim::BroadcastMKLDNNTensors(%c, %residual)
//   %s = aten::add_(%a, %b, 1)
//   %r = aten::relu_(%s)
// The fused operator runs where the convolution was, so the residual must exist there already
// and nothing between the two may change it.
void MatchResidual(Node* conv, AliasDb& aliases, PostOpMatch& match) {
  Node* broadcast = nullptr;
  if (!SingleUse(match.result, &broadcast) || broadcast->kind() != kBroadcast ||
      broadcast->inputs().size() != 2 || broadcast->outputs().size() != 2 ||
      broadcast->owningBlock() != conv->owningBlock()) {
    return;
  }
  const size_t mine = broadcast->input(0) == match.result ? 0 : 1;
  if (broadcast->input(1 - mine) == match.result) return;  // conv(x) + conv(x)
  Value* residual = broadcast->input(1 - mine);
  Node* add = nullptr;
  Node* other_user = nullptr;
  if (!SingleUse(broadcast->output(mine), &add) || !SingleUse(broadcast->output(1 - mine), &other_user) ||
      add != other_user || add->owningBlock() != conv->owningBlock() || add->inputs().size() != 3 ||
      !IsOne(add->input(2))) {
    return;
  }
  // In place, add_ must write into the convolution's result, not into the residual.
  const bool in_place = add->kind() == c10::aten::add_;
  if (!(in_place && add->input(0) == broadcast->output(mine)) && add->kind() != c10::aten::add) return;
  if (residual->node()->kind() != c10::prim::Param && !residual->node()->isBefore(conv)) return;
  for (Node* node = conv->next(); node != add; node = node->next()) {
    if (aliases.writesToAlias(node, {residual})) return;
  }
  match.residual = residual;
  match.consumed.push_back(broadcast);
  match.consumed.push_back(add);
  match.result = add->output();
}

// The activation applied to the result, when nothing else reads the result before it. It runs
// early, with the convolution, so it must not sit in a branch of its own.
void MatchActivation(Node* conv, PostOpMatch& match) {
  Node* user = nullptr;
  if (!SingleUse(match.result, &user) || user->input(0) != match.result ||
      user->owningBlock() != conv->owningBlock()) {
    return;
  }
  const auto kind = user->kind();
  if (kind == c10::aten::relu_ || kind == c10::aten::relu) {
    match.activation.kind = Activation::Kind::kRelu;
  } else if (kind == c10::aten::silu_ || kind == c10::aten::silu) {
    match.activation.kind = Activation::Kind::kSilu;
  } else if (kind == kHardTanh && user->hasAttributeS("min_val") && user->hasAttributeS("max_val")) {
    match.activation.kind = Activation::Kind::kClip;
    match.activation.low = static_cast<float>(user->f(c10::Symbol::attr("min_val")));
    match.activation.high = static_cast<float>(user->f(c10::Symbol::attr("max_val")));
  } else {
    return;
  }
  match.consumed.push_back(user);
  match.result = user->output();
}

Node* NextConvolution(Graph& graph, const std::unordered_set<Node*>& skipped) {
  for (Node* node : graph.nodes()) {
    if (node->kind() == kMkldnnConv && skipped.count(node) == 0) return node;
  }
  return nullptr;
}

}  // namespace

bool OneDnnFusionAvailable() { return true; }

OneDnnReport FuseOneDnnConvolutions(const std::shared_ptr<Graph>& graph, bool winograd) {
  OneDnnReport report;
  std::unordered_set<Node*> skipped;
  auto scratchpad = std::make_shared<Scratchpad>();
  while (Node* conv = NextConvolution(*graph, skipped)) {
    auto spec = ReadConv(conv, winograd);
    if (!spec) {
      skipped.insert(conv);
      continue;
    }
    PostOpMatch match;
    match.result = conv->output();
    {
      AliasDb aliases(graph);  // rebuilt for each convolution: the graph changes under it
      MatchResidual(conv, aliases, match);
    }
    MatchActivation(conv, match);
    spec->residual = match.residual != nullptr;
    spec->activation = match.activation;
    spec->scratchpad = scratchpad;

    report.convolutions += 1;
    report.winograd += spec->winograd ? 1 : 0;
    report.fused_residuals += match.residual ? 1 : 0;
    report.fused_activations += match.activation.kind != Activation::Kind::kNone ? 1 : 0;

    torch::jit::WithInsertPoint here(conv);
    Value* op = graph->insertConstant(MakeOneDnnConv(std::move(*spec)));
    Value* residual = match.residual ? match.residual : graph->insertConstant(c10::IValue());
    Node* fused = graph->insertNode(graph->create(OneDnnConvSymbol(), {conv->input(0), op, residual}, 1));
    fused->output()->setType(c10::TensorType::get());
    match.result->replaceAllUsesWith(fused->output());
    for (auto node = match.consumed.rbegin(); node != match.consumed.rend(); ++node) (*node)->destroy();
    conv->destroy();
  }
  // The MKLDNN constants only the replaced convolutions read.
  torch::jit::EliminateDeadCode(graph);
  return report;
}

}  // namespace ltf

#endif  // LTF_WITH_ONEDNN

namespace ltf {

bool OneDnnFusionEnabled() {
  const char* setting = std::getenv("LTF_ONEDNN_FUSION");
  if (!OneDnnFusionAvailable() || (setting && std::strcmp(setting, "0") == 0)) return false;
#ifdef LTF_WITH_ONEDNN
  return CpuSuitsOneDnnFusion();
#else
  return false;
#endif
}

}  // namespace ltf

#ifndef LTF_WITH_ONEDNN

namespace ltf {

bool OneDnnFusionAvailable() { return false; }

OneDnnReport FuseOneDnnConvolutions(const std::shared_ptr<torch::jit::Graph>&, bool) { return {}; }

}  // namespace ltf

#endif  // LTF_WITH_ONEDNN

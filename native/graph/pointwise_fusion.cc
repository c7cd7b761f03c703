#include "graph/pointwise_fusion.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "graph/node_patterns.h"
#include "winograd/winograd_op.h"

namespace ltf {

namespace {

using torch::jit::AliasDb;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

const c10::Symbol kPointwise = c10::Symbol::fromQualString("mkldnn::_convolution_pointwise");
// optimize_for_inference's constant node for MKLDNN tensors (prim::Constant takes only tensors with
// storage, and a packed weight has none): registered wherever LibTorch is built with oneDNN.
const c10::Symbol kMkldnnConstant = c10::Symbol::fromQualString("prim::ConstantMKLDNNTensor");

c10::optional<c10::OperatorHandle> FindOperator(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchema(c10::OperatorName(name, overload));
}

std::optional<std::vector<int64_t>> ConstantPair(Value* value) {
  auto constant = torch::jit::toIValue(value);
  if (!constant || !constant->isIntList()) return std::nullopt;
  auto ints = constant->toIntVector();
  if (ints.size() == 1) ints.push_back(ints[0]);  // conv2d takes [k] for [k, k]
  if (ints.size() != 2) return std::nullopt;
  return ints;
}

std::optional<at::Tensor> ConstantTensor(Value* value) {
  auto constant = torch::jit::toIValue(value);
  if (constant && constant->isTensor()) return constant->toTensor();
  return std::nullopt;
}

// What a convolution node needs to become the fused operator; nullopt for the ones left alone.
struct Conv {
  at::Tensor weight;  // as the graph has it
  at::Tensor packed;  // the weight in the layout oneDNN's primitive reads; undefined for Winograd
  std::optional<at::Tensor> bias;
  std::vector<int64_t> padding, stride, dilation;
  int64_t groups = 1;
  bool winograd = false;  // for our own Winograd operator (winograd/winograd_op.h) instead
};

std::optional<Conv> ReadConv(Node* node, const c10::OperatorHandle& reorder,
                             const std::optional<std::vector<int64_t>>& input_size, bool winograd) {
  // aten::conv2d(input, weight, bias, stride, padding, dilation, groups)
  if (node->kind() != c10::aten::conv2d || node->inputs().size() != 7) return std::nullopt;
  auto weight = ConstantTensor(node->input(1));
  auto stride = ConstantPair(node->input(3));
  auto padding = ConstantPair(node->input(4));  // the string overload ('same') is not a pair
  auto dilation = ConstantPair(node->input(5));
  auto groups = torch::jit::toIValue(node->input(6));
  if (!weight || weight->dim() != 4 ||
      (weight->scalar_type() != at::kBFloat16 && weight->scalar_type() != at::kFloat) ||
      !weight->device().is_cpu() || weight->layout() != at::kStrided || !stride || !padding || !dilation ||
      !groups || !groups->isInt()) {
    return std::nullopt;
  }
  std::optional<at::Tensor> bias;
  if (!node->input(2)->type()->cast<c10::NoneType>()) {
    bias = ConstantTensor(node->input(2));
    if (!bias || bias->dim() != 1 || bias->scalar_type() != weight->scalar_type()) return std::nullopt;
  }
  // An unbatched input ([C, H, W]: conv2d takes it) is not one the fused operators take.
  if (input_size && input_size->size() != 4) return std::nullopt;
  Conv conv{*weight, at::Tensor(), bias, *padding, *stride, *dilation, groups->toInt()};
  if (winograd && WinogradSuits(*weight, conv.stride, conv.padding, conv.dilation, conv.groups)) {
    conv.winograd = true;
    return conv;
  }
  // The layout oneDNN's primitive wants depends on the input's shape (AcdB64a2b, AcdB32a2b,
  // AcdB48a2b... for ResNet-18's layers at batch 8 on AVX512_BF16): packed for another shape, or
  // with none, the operator reorders the weight on every call (2.5 ms of 76 per ResNet-18 batch),
  // correct but slower.
  torch::jit::Stack stack{*weight,       conv.padding, conv.stride,
                          conv.dilation, conv.groups,  input_size ? c10::IValue(*input_size) : c10::IValue()};
  try {
    c10::InferenceMode inference;
    reorder.callBoxed(stack);
  } catch (const c10::Error&) {
    return std::nullopt;  // this LibTorch cannot pack it: the convolution stays aten::conv2d
  }
  if (stack.size() != 1 || !stack[0].isTensor()) return std::nullopt;
  conv.packed = stack[0].toTensor();
  return conv;
}

// An activation oneDNN can apply as the convolution's post-op: its name for the fused operator
// and its scalars.
struct Activation {
  std::string attr;
  std::vector<double> scalars;
};

std::optional<Activation> ReadActivation(Node* node) {
  const auto kind = node->kind();
  if (kind == c10::aten::relu || kind == c10::aten::relu_) return Activation{"relu", {}};
  if (kind == c10::aten::silu || kind == c10::aten::silu_) return Activation{"swish", {}};
  if (kind == c10::aten::hardswish || kind == c10::aten::hardswish_) return Activation{"hardswish", {}};
  if (kind == c10::aten::sigmoid || kind == c10::aten::sigmoid_) return Activation{"sigmoid", {}};
  if (kind == c10::aten::relu6 || kind == c10::aten::relu6_) return Activation{"hardtanh", {0.0, 6.0}};
  if ((kind == c10::aten::hardtanh || kind == c10::aten::hardtanh_) && node->inputs().size() == 3) {
    auto low = torch::jit::toIValue(node->input(1));
    auto high = torch::jit::toIValue(node->input(2));
    if (low && high && (low->isDouble() || low->isInt()) && (high->isDouble() || high->isInt())) {
      return Activation{"hardtanh", {low->toScalar().toDouble(), high->toScalar().toDouble()}};
    }
  }
  return std::nullopt;
}

// The activation applied to `result` alone, when nothing else reads `result`: it then runs with
// the convolution, so it must be in the convolution's block.
Node* ActivationOf(Value* result, Node* conv, std::optional<Activation>* activation) {
  Node* user = nullptr;
  if (!SingleUse(result, &user) || user->inputs().empty() || user->input(0) != result ||
      user->owningBlock() != conv->owningBlock()) {
    return nullptr;
  }
  *activation = ReadActivation(user);
  return *activation ? user : nullptr;
}

// `conv(x) + residual` (aten::add or add_ into the convolution's result, alpha 1). The fused
// operator runs where the convolution was, so the residual must exist there already and nothing
// between the two may change it.
Node* ResidualOf(Node* conv, const std::shared_ptr<Graph>& graph, Value** residual) {
  Node* add = nullptr;
  Value* result = conv->output();
  if (!SingleUse(result, &add) || add->owningBlock() != conv->owningBlock() || add->inputs().size() != 3 ||
      !IsOne(add->input(2))) {
    return nullptr;
  }
  const bool in_place = add->kind() == c10::aten::add_;
  if (!in_place && add->kind() != c10::aten::add) return nullptr;
  Value* other = add->input(0) == result ? add->input(1) : add->input(0);
  // add_ into the residual (ResNet's `out += identity` when the identity is the downsampling
  // convolution, computed after `out`): the fused operator writes a new tensor instead, which is
  // the same only where nothing else reads the residual, and it is a convolution's own result.
  if (in_place && add->input(0) != result) {
    Node* producer = other->node();
    if (other->uses().size() != 1 ||
        (producer->kind() != c10::aten::conv2d && producer->kind() != kPointwise &&
         producer->kind() != WinogradConvSymbol())) {
      return nullptr;
    }
  }
  if (other == result || !other->type()->cast<c10::TensorType>()) return nullptr;
  if (other->node()->kind() != c10::prim::Param && !other->node()->isBefore(conv)) return nullptr;
  // Built here, for candidates only, and for each one (the graph changes under it): a model with
  // many convolutions but few additions does not pay for an alias analysis per convolution.
  AliasDb aliases(graph);
  for (Node* node = conv->next(); node != add; node = node->next()) {
    if (aliases.writesToAlias(node, {other})) return nullptr;
  }
  *residual = other;
  return add;
}

Value* PackedConstant(Graph& graph, const at::Tensor& packed) {
  Node* node = graph.insertNode(graph.create(kMkldnnConstant, 1));
  node->t_(c10::attr::value, packed);
  node->output()->setType(c10::TensorType::create(packed));
  return node->output();
}

Value* Scalars(Graph& graph, const std::vector<double>& values) {
  c10::impl::GenericList list(c10::OptionalType::create(c10::NumberType::get()));
  for (double value : values) list.push_back(value);
  return graph.insertConstant(list);
}

// The fused operator for `node` (and the residual and activation taken with it), inserted at the
// insertion point.
Node* InsertPointwise(Graph& graph, Node* node, const Conv& conv, Value* residual,
                      const std::optional<Activation>& activation) {
  std::vector<Value*> inputs{node->input(0)};
  if (residual) inputs.push_back(residual);
  inputs.insert(inputs.end(), {PackedConstant(graph, conv.packed), node->input(2),
                               graph.insertConstant(conv.padding), graph.insertConstant(conv.stride),
                               graph.insertConstant(conv.dilation), graph.insertConstant(conv.groups)});
  if (residual) {
    inputs.push_back(graph.insertConstant(std::string("add")));
    inputs.push_back(graph.insertConstant(c10::IValue()));  // alpha: 1
    inputs.push_back(activation ? graph.insertConstant(activation->attr)
                                : graph.insertConstant(c10::IValue()));
  } else {
    inputs.push_back(graph.insertConstant(activation ? activation->attr : std::string("none")));
  }
  inputs.push_back(Scalars(graph, activation ? activation->scalars : std::vector<double>()));
  inputs.push_back(graph.insertConstant(c10::IValue()));  // algorithm
  return graph.insertNode(graph.create(kPointwise, inputs, 1));
}

// The Winograd operator for `node`, with a ReLU where `relu`; nullptr where this LibTorch cannot
// pack its weights (the convolution then stays as it is). The graph's Winograd convolutions share
// one scratch buffer (*scratch, made by the first).
Node* InsertWinograd(Graph& graph, Node* node, const Conv& conv, Value* residual, bool relu,
                     const std::optional<std::vector<int64_t>>& input_size,
                     std::shared_ptr<WinogradScratch>* scratch) {
  if (!*scratch) *scratch = MakeWinogradScratch();
  c10::IValue op;
  try {
    c10::InferenceMode inference;
    op = MakeWinogradConv(conv.weight, conv.bias, relu, input_size, *scratch);
  } catch (const c10::Error&) {
    return nullptr;
  }
  Value* added = residual ? residual : graph.insertConstant(c10::IValue());
  return graph.insertNode(
      graph.create(WinogradConvSymbol(), {node->input(0), graph.insertConstant(op), added}, 1));
}

// The size of each convolution's input (nullopt where unknown), in graph order.
using InputSizes = std::vector<std::optional<std::vector<int64_t>>>;

// The sizes when `graph` runs `batch`, from a copy of the graph that returns them (aten::size after
// each convolution; the tensors are freed as usual). nullopt where the batch does not run (a
// wrong channel count: the caller gets the plain cut's error, and the next input is tried).
std::optional<InputSizes> SizesFor(Graph& graph, const std::vector<Node*>& convolutions,
                                   const c10::IValue& self, const at::Tensor& batch) {
  InputSizes sizes(convolutions.size());
  auto copy = graph.copy();
  std::vector<Value*> size_values;
  for (Node* node : copy->nodes()) {
    if (node->kind() != c10::aten::conv2d) continue;
    torch::jit::WithInsertPoint after(node->next());
    size_values.push_back(copy->insert(c10::aten::size, {node->input(0)}));
  }
  if (size_values.size() != convolutions.size() || copy->inputs().size() != 2) {
    return sizes;  // all unknown: packed without a shape
  }
  while (!copy->outputs().empty()) copy->eraseOutput(copy->outputs().size() - 1);
  copy->registerOutput(copy->insertNode(copy->createTuple(size_values))->output());
  try {
    torch::jit::GraphFunction function("ltf_convolution_input_sizes", copy, nullptr);
    const c10::IValue result = function({self, batch});
    const auto& elements = result.toTupleRef().elements();
    for (size_t i = 0; i < elements.size() && i < sizes.size(); ++i) sizes[i] = elements[i].toIntVector();
  } catch (const std::exception&) {  // the interpreter rethrows LibTorch's errors as it pleases
    return std::nullopt;
  }
  return sizes;
}

}  // namespace

bool PointwiseFusionAvailable() {
  static const bool available = FindOperator("mkldnn::_convolution_pointwise", "").has_value() &&
                                FindOperator("mkldnn::_convolution_pointwise", "binary").has_value() &&
                                FindOperator("mkldnn::_reorder_convolution_weight", "").has_value();
  return available;
}

bool PointwiseFusionEnabled() {
  const char* setting = std::getenv("LTF_ONEDNN_FUSION");
  return PointwiseFusionAvailable() && !(setting && std::strcmp(setting, "0") == 0);
}

std::optional<OneDnnReport> FusePointwiseConvolutions(const std::shared_ptr<Graph>& graph,
                                                      const c10::IValue& self, const at::Tensor& batch,
                                                      bool winograd) {
  OneDnnReport report;
  auto reorder = FindOperator("mkldnn::_reorder_convolution_weight", "");
  if (!reorder || !PointwiseFusionAvailable()) return report;
  winograd = winograd && WinogradAvailable();
  // Convolutions in nested blocks stay: their post-ops would have to be found across blocks.
  std::vector<Node*> convolutions;
  for (Node* node : graph->nodes()) {
    if (node->kind() == c10::aten::conv2d) convolutions.push_back(node);
  }
  if (convolutions.empty()) return report;  // no run of the graph for nothing
  const auto input_sizes = SizesFor(*graph, convolutions, self, batch);
  if (!input_sizes) return std::nullopt;
  std::shared_ptr<WinogradScratch> scratch;
  for (size_t i = 0; i < convolutions.size(); ++i) {
    Node* node = convolutions[i];
    auto conv = ReadConv(node, *reorder, (*input_sizes)[i], winograd);
    if (!conv) continue;
    Value* residual = nullptr;
    Node* add = ResidualOf(node, graph, &residual);
    std::optional<Activation> activation;
    Node* activation_node = ActivationOf(add ? add->output() : node->output(), node, &activation);
    // With a residual, the fused operator takes a ReLU after the addition and nothing else; the
    // Winograd operator only ever a ReLU.
    if ((add || conv->winograd) && activation && activation->attr != "relu") {
      activation.reset();
      activation_node = nullptr;
    }

    torch::jit::WithInsertPoint here(node);
    Node* fused = conv->winograd ? InsertWinograd(*graph, node, *conv, residual, activation.has_value(),
                                                  (*input_sizes)[i], &scratch)
                                 : InsertPointwise(*graph, node, *conv, residual, activation);
    if (!fused) continue;
    fused->output()->setType(c10::TensorType::get());
    if (!fused->maybeOperator()) {  // no overload takes these inputs: leave the convolution
      fused->destroy();
      continue;
    }
    Value* result = activation_node ? activation_node->output() : add ? add->output() : node->output();
    result->replaceAllUsesWith(fused->output());
    if (activation_node) activation_node->destroy();
    if (add) add->destroy();
    Node* weight = node->input(1)->node();
    node->destroy();
    // The plain weight goes now rather than with the dead code at the end: the graph never holds
    // every convolution's weight twice (ResNet-18 in float32: 45 MB at the peak).
    if (weight->kind() == c10::prim::Constant && weight->output()->uses().empty()) weight->destroy();
    report.convolutions += 1;
    report.winograd += conv->winograd ? 1 : 0;
    report.fused_residuals += add ? 1 : 0;
    report.fused_activations += activation ? 1 : 0;
  }
  // The plain weights only the replaced convolutions read, and constants left unused.
  torch::jit::EliminateDeadCode(graph);
  return report;
}

}  // namespace ltf

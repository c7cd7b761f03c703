#include "graph/node_names.h"

#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>
#include <cctype>

namespace ltf {

namespace {

using torch::jit::Node;

// A TorchScript qualified name without "__torch__." and the ___torch_mangle_N parts that
// TorchScript adds to tell apart classes of the same name: "torchvision.ops.misc.Conv2dNormActivation".
std::string PythonName(const std::string& qualified) {
  std::string result;
  size_t start = 0;
  while (start <= qualified.size()) {
    size_t end = qualified.find('.', start);
    if (end == std::string::npos) end = qualified.size();
    const std::string part = qualified.substr(start, end - start);
    if (!(start == 0 && part == "__torch__") && part.rfind("___torch_mangle_", 0) != 0) {
      result += (result.empty() ? "" : ".") + part;
    }
    start = end + 1;
  }
  return result;
}

bool StartsWith(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// torchvision classes that subclass a torchvision.ops module, so that fx's isinstance test makes
// them leaves too.
const std::set<std::string> kLeafSubclasses = {
    "torchvision.models.vision_transformer.MLPBlock",  // torchvision.ops.MLP
    "torchvision.models.regnet.SimpleStemIN",          // torchvision.ops.Conv2dNormActivation
};

// Functions that torchvision wraps with torch.fx.wrap: fx records their calls as one node.
const std::set<std::string> kWrappedFunctions = {
    "torchvision.models.swin_transformer._patch_merging_pad",
    "torchvision.models.swin_transformer._get_relative_position_bias",
    "torchvision.models.swin_transformer.shifted_window_attention",
    "torchvision.models.video.swin_transformer._get_window_and_shift_size",
    "torchvision.models.video.swin_transformer._get_relative_position_bias",
    "torchvision.models.video.swin_transformer._compute_pad_size_3d",
    "torchvision.models.video.swin_transformer._compute_attention_mask_3d",
    "torchvision.models.video.swin_transformer.shifted_window_attention_3d",
    "torchvision.models.video.mvit._unsqueeze",
    "torchvision.models.video.mvit._squeeze",
    "torchvision.models.video.mvit._add_rel_pos",
    "torchvision.models.video.mvit._add_shortcut",
};

// torch.nn.functional's functions that dispatch on a flag (boolean_dispatch): TorchScript calls
// the variant ("_max_pool2d"), fx names the public function ("max_pool2d").
const std::set<std::string> kDispatchedVariants = {
    "_max_pool1d",
    "_max_pool2d",
    "_max_pool3d",
    "_adaptive_max_pool1d",
    "_adaptive_max_pool2d",
    "_adaptive_max_pool3d",
    "_fractional_max_pool2d",
    "_fractional_max_pool3d",
};

// torch.fx's _snake_case: "camelCase" -> "camel_case", everything lower case.
std::string SnakeCase(const std::string& name) {
  std::string result;
  bool previous_lower = false;
  for (char c : name) {
    const bool upper = std::isupper(static_cast<unsigned char>(c)) != 0;
    if (previous_lower && upper) result += '_';
    result += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    previous_lower = std::islower(static_cast<unsigned char>(c)) != 0;
  }
  return result;
}

// The range of the model's own Python code a node was compiled from. A loaded model's nodes point
// into the code TorchScript serialized (`torch.select(torch.slice(x, ...), 1, 0)`), which keeps
// the original range of each part beside it.
torch::jit::SourceRange OriginalRange(const Node* node) {
  const auto& range = node->sourceRange();
  if (!range.source()) return range;
  try {
    auto original = range.findSourceRangeThatGenerated();
    return original ? *original : range;
  } catch (const std::exception&) {  // debug information a damaged file holds: go without
    return range;
  }
}

// The text of the Python code a node was compiled from, when the file kept it.
std::string SourceText(const Node* node) {
  const auto range = OriginalRange(node);
  if (!range.source()) return "";
  try {
    return range.text().str();
  } catch (const std::exception&) {
    return "";
  }
}

bool EndsWithBracket(const std::string& text) {
  const auto last = text.find_last_not_of(" \t\r\n");
  return last != std::string::npos && text[last] == ']';
}

// Whether the model's code calls `name` as a function or method (`torch.div(a, 3)`, `d.mul_(2)`:
// the range is the callee, "torch.div") rather than through an operator (`a / 3`, `d += a`, or
// `b // 2`, which TorchScript compiles through a builtin of its own, from no file).
bool CalledByName(const Node* node, const std::string& name) {
  const auto range = OriginalRange(node);
  if (!range.source()) return false;
  const auto& file = range.source()->filename();
  if (!file || *file == "<string>") return false;
  std::string text = SourceText(node);
  text.erase(text.find_last_not_of(" \t\r\n") + 1);
  const std::string member = "." + name;
  return text == name ||
         (text.size() > member.size() &&
          text.compare(text.size() - member.size(), member.size(), member) == 0) ||
         text.find(name + "(") != std::string::npos;
}

// Operators that an indexing expression (x[:, 0], x[..., 0::2, :]) compiles to, one per index.
bool IsIndexingStep(const Node* node) {
  static const std::set<std::string> steps = {"slice", "select", "index", "unsqueeze", "__getitem__"};
  return node->kind().is_aten() && steps.count(node->kind().toUnqualString()) > 0;
}

bool SameSource(const Node* a, const Node* b) {
  const auto ra = OriginalRange(a);
  const auto rb = OriginalRange(b);
  return ra.source() && ra.source() == rb.source() && ra.start() == rb.start() && ra.end() == rb.end();
}

// aten operators that Python spells with an operator symbol: fx names them after the operator
// module's function, which differs from the aten name for these.
std::string OperatorSpelling(const std::string& aten, const Node* node) {
  static const std::map<std::string, std::string> symbols = {
      {"div", "truediv"}, {"remainder", "mod"}, {"floor_divide", "floordiv"}};
  const auto symbol = symbols.find(aten);
  if (symbol == symbols.end()) return aten;
  if (SourceText(node).empty() || CalledByName(node, aten)) return aten;  // without the code: aten's name
  return symbol->second;
}

}  // namespace

bool IsFxLeaf(const torch::jit::Module& module) {
  const auto qualified = module.type()->name();
  if (!qualified) return false;
  const std::string name = PythonName(qualified->qualifiedName());
  if (StartsWith(name, "torch.nn.") || StartsWith(name, "torch.ao.nn.")) {
    return name != "torch.nn.modules.container.Sequential";
  }
  return StartsWith(name, "torchvision.ops.") || kLeafSubclasses.count(name) > 0;
}

std::optional<std::string> KeptFunctionName(const Node* call) {
  const auto type = call->inputs().at(0)->type()->cast<c10::FunctionType>();
  if (!type || !type->function()) return std::nullopt;
  const std::string name = PythonName(type->function()->qualname().qualifiedName());
  const bool kept = StartsWith(name, "torch.") || StartsWith(name, "torchvision.ops.") ||
                    StartsWith(name, "math.") || kWrappedFunctions.count(name) > 0;
  if (!kept) return std::nullopt;
  std::string last = name.substr(name.rfind('.') + 1);
  if (kDispatchedVariants.count(last)) last = last.substr(1);
  return SnakeCase(last);
}

std::vector<std::string> OperatorNodeNames(const Node* node) {
  const auto kind = node->kind();
  // Unpacking or indexing a tuple or list the forward built itself (a method's `return x, aux`):
  // in Python that is no traced operation.
  const bool unpacks = kind == c10::prim::TupleUnpack || kind == c10::prim::ListUnpack ||
                       kind == c10::prim::TupleIndex || kind == c10::aten::__getitem__;
  if (unpacks && !node->inputs().empty()) {
    const auto source = node->inputs().at(0)->node()->kind();
    if (source == c10::prim::TupleConstruct || source == c10::prim::ListConstruct) return {};
  }
  if (kind == c10::prim::TupleUnpack || kind == c10::prim::ListUnpack) {
    return std::vector<std::string>(node->outputs().size(), "getitem");
  }
  if (kind == c10::prim::ConstantChunk) {
    // x1, x2 = x.chunk(2): fx has the chunk, then a getitem per part.
    std::vector<std::string> names{"chunk"};
    names.insert(names.end(), node->outputs().size(), "getitem");
    return names;
  }
  if (kind == c10::prim::TupleIndex) return {"getitem"};
  if (!kind.is_aten()) return {};
  // Operations on strings (an f-string for an error message is aten::add of strs): fx traces none.
  if (std::all_of(node->outputs().begin(), node->outputs().end(), [](const torch::jit::Value* output) {
        return output->type()->kind() == c10::TypeKind::StringType;
      })) {
    return {};
  }
  std::string name = kind.toUnqualString();
  if (node->outputs().size() > 1) {
    // values, indices = x.max(1): fx has the call, then a getitem per part.
    std::vector<std::string> names{name};
    names.insert(names.end(), node->outputs().size(), "getitem");
    return names;
  }
  static const std::set<std::string> silent = {
      "Int", "Float", "Bool",   "ScalarImplicit", "__is__",    "__isnot__", "format",       "warn",
      "str", "list",  "device", "dtype",          "_set_item", "append",    "__interpolate"};
  if (silent.count(name)) return {};
  if (IsIndexingStep(node)) {
    // One name per indexing expression, on its last step.
    const auto& uses = node->output()->uses();
    if (uses.size() == 1 && IsIndexingStep(uses[0].user) && SameSource(node, uses[0].user)) return {};
    const std::string text = SourceText(node);
    if (name == "__getitem__" || text.empty() || EndsWithBracket(text)) return {"getitem"};
    return {name};
  }
  static const std::map<std::string, std::string> dunders = {
      {"__and__", "and_"},          {"__or__", "or_"},        {"__xor__", "xor"},      {"__not__", "not_"},
      {"__contains__", "contains"}, {"__lshift__", "lshift"}, {"__rshift__", "rshift"}};
  const auto dunder = dunders.find(name);
  if (dunder != dunders.end()) return {dunder->second};
  // In-place forms: `out += identity` (aten::add_) is fx's operator.add; `x.add_(y)` its method add_.
  if (name.size() > 1 && name.back() == '_' && name.front() != '_' && !CalledByName(node, name)) {
    name.pop_back();
  }
  return {OperatorSpelling(name, node)};
}

std::string AttributeNodeName(const std::string& path) {
  std::string name = SnakeCase(path);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  }
  if (name.empty()) return "_unnamed";
  if (std::isdigit(static_cast<unsigned char>(name[0]))) name = "_" + name;
  return name;
}

namespace {

// ".+_[0-9]+$" -> the part before the last "_".
std::string Stem(const std::string& qualname) {
  const auto underscore = qualname.rfind('_');
  if (underscore == std::string::npos || underscore == 0 || underscore + 1 >= qualname.size())
    return qualname;
  const bool digits = std::all_of(qualname.begin() + static_cast<std::ptrdiff_t>(underscore) + 1,
                                  qualname.end(), [](char c) { return c >= '0' && c <= '9'; });
  return digits ? qualname.substr(0, underscore) : qualname;
}

}  // namespace

std::string NodeNamer::Next(const std::string& qualname, bool* known) {
  const std::string stem = Stem(qualname);
  *known = unknown_.count(stem) == 0;
  const auto last = last_index_.find(stem);
  if (last == last_index_.end()) {
    last_index_.emplace(stem, 0);
    return stem;
  }
  return stem + "_" + std::to_string(++last->second);
}

void NodeNamer::MarkUnknown(const std::string& qualname) { unknown_.insert(Stem(qualname)); }

}  // namespace ltf

#include "graph/module_tree.h"

#include "common/errors.h"

namespace ltf {

std::string TypeName(const torch::jit::Module& module) {
  // "__torch__.torch.nn.modules.conv.Conv2d" (or a ___torch_mangle_N. variant) -> "Conv2d"
  const auto qualified = module.type()->name();
  return qualified ? qualified->name() : "Module";
}

std::optional<torch::jit::Module> FindModule(const torch::jit::Module& root, const std::string& path) {
  torch::jit::Module current = root;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('.', start);
    if (end == std::string::npos) end = path.size();
    const std::string name = path.substr(start, end - start);
    const auto slot = current.type()->findAttributeSlot(name);
    if (!slot || !current.type()->getAttribute(*slot)->cast<c10::ClassType>()) return std::nullopt;
    const auto value = current._ivalue()->getSlot(*slot);
    if (!value.isObject() || !value.toObjectRef().type()->is_module()) return std::nullopt;
    current = torch::jit::Module(value.toObject());
    start = end + 1;
  }
  return current;
}

torch::jit::Module ModuleAt(const torch::jit::Module& root, const std::string& path) {
  auto found = FindModule(root, path);
  if (!found) {
    throw NativeError(code::kInternal, "the model's graph refers to a submodule '" + path +
                                           "' that the model does not hold (a damaged or hand-made file?)");
  }
  return std::move(*found);
}

std::optional<std::string> ModulePath(const torch::jit::Value* value, const torch::jit::Value* self) {
  const auto type = value->type()->cast<c10::ClassType>();
  if (!type || !type->is_module()) return std::nullopt;
  std::string path;
  while (value != self) {
    const torch::jit::Node* node = value->node();
    if (node->kind() != c10::prim::GetAttr) return std::nullopt;
    const std::string& name = node->s(c10::attr::name);
    path = path.empty() ? name : name + "." + path;
    value = node->inputs().at(0);
  }
  return path;
}

bool HasChildren(const torch::jit::Module& module) { return module.children().size() > 0; }

bool IsForward(const std::string& method) { return method == "forward" || method.rfind("forward__", 0) == 0; }

bool IsBelow(const std::string& path, const std::string& ancestor) {
  if (ancestor.empty()) return !path.empty();
  return path.size() > ancestor.size() && path.compare(0, ancestor.size(), ancestor) == 0 &&
         path[ancestor.size()] == '.';
}

std::optional<c10::IValue> PlainAttribute(const torch::jit::Module& root, const torch::jit::Node* get,
                                          const torch::jit::Value* self) {
  const auto owner = ModulePath(get->inputs().at(0), self);
  if (!owner) return std::nullopt;
  c10::IValue value = ModuleAt(root, *owner).attr(get->s(c10::attr::name));
  if (value.isTensor() || value.isObject() || value.isGenericDict() || value.isList()) return std::nullopt;
  return value;
}

}  // namespace ltf

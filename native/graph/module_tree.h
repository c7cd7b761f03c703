// Finding submodules by their dotted path ("layer3.1.conv2") in a TorchScript module and in the
// values of its graphs.
#pragma once

#include <torch/script.h>

#include <optional>
#include <string>

namespace ltf {

// The class name without its module path: "Conv2d", "Sequential", "BasicBlock".
std::string TypeName(const torch::jit::Module& module);

// The submodule at a dotted path ("" is `root` itself), or nullopt when there is none.
std::optional<torch::jit::Module> FindModule(const torch::jit::Module& root, const std::string& path);

// The submodule at a dotted path that the caller found in the model's own graph or tree, so that it
// must exist; throws NativeError(INTERNAL) naming the path if it does not (a model whose graph
// names a submodule its object lacks), never dereferences nothing.
torch::jit::Module ModuleAt(const torch::jit::Module& root, const std::string& path);

// The dotted path of the module a graph value holds, when it is reached from `self` through
// prim::GetAttr nodes ("" for self); nullopt for any other value.
std::optional<std::string> ModulePath(const torch::jit::Value* value, const torch::jit::Value* self);

// The value a prim::GetAttr node reads when it is a plain attribute of a module of `root` reached
// from `self`: a flag, a number, a string, None (self.training, torchvision's use_res_connect);
// nullopt for tensors, modules and other objects, lists and dicts (which the forward may change),
// and reads of anything but a module. The one rule for folding attributes into constants, in
// graph_expand.cc (conditions) and graph_ops.cc (the cut).
std::optional<c10::IValue> PlainAttribute(const torch::jit::Module& root, const torch::jit::Node* get,
                                          const torch::jit::Value* self);

// Whether a module has submodules (a container, or a block such as BasicBlock).
bool HasChildren(const torch::jit::Module& module);

// Whether a method name is a module's forward: "forward", or "forward__N" for the overloads that
// torch.jit._overload_method compiles (torchvision's _DenseLayer).
bool IsForward(const std::string& method);

// `path` is below `ancestor` in the tree ("layer1.0" is below "layer1" and below "").
bool IsBelow(const std::string& path, const std::string& ancestor);

}  // namespace ltf

#include "truncate.h"

#include <sys/stat.h>

#include "chain.h"
#include "errors.h"
#include "jit_child.h"

namespace ltf {

namespace {

std::string TypeName(const torch::jit::Module& module) {
  // "__torch__.torch.nn.modules.conv.Conv2d" (or a ___torch_mangle_N. variant) -> "Conv2d"
  const auto qualified = module.type()->name();
  return qualified ? qualified->name() : "Module";
}

std::string JoinNames(const std::vector<LayerInfo>& layers) {
  std::string names;
  for (const auto& layer : layers) names += (names.empty() ? "" : ", ") + layer.name;
  return names.empty() ? "(none: the model has no child modules)" : names;
}

}  // namespace

torch::jit::Module LoadModule(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    throw NativeError(code::kModelNotFound, "model file not found: " + path);
  }
  if (S_ISDIR(info.st_mode)) {
    throw NativeError(code::kModelLoadFailed,
                      "model path is a directory, not a TorchScript file: " + path);
  }
  try {
    // Loaded on the CPU whatever the target device: only the children kept are moved.
    return torch::jit::load(path, torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    throw NativeError(code::kModelLoadFailed,
                      "could not load '" + path + "' as TorchScript (save the model with "
                      "torch.jit.script(model).save(path) or torch.jit.trace): " +
                          Describe(std::current_exception(), code::kModelLoadFailed).message);
  }
}

std::vector<LayerInfo> ListLayers(const torch::jit::Module& module) {
  std::vector<LayerInfo> layers;
  for (const auto& child : module.named_children()) {
    layers.push_back({child.name, TypeName(child.value)});
  }
  return layers;
}

std::shared_ptr<TruncatedModel> Truncate(const std::string& path, const std::string& layer,
                                         torch::Device device) {
  auto model = std::make_shared<TruncatedModel>();
  {
    torch::jit::Module module = LoadModule(path);
    model->layers = ListLayers(module);
    const bool exists = std::any_of(model->layers.begin(), model->layers.end(),
                                    [&](const LayerInfo& info) { return info.name == layer; });
    if (!exists) {
      throw NativeError(code::kLayerNotFound, "layer '" + layer +
                                                  "' is not a top-level child of the model; its "
                                                  "layers are: " + JoinNames(model->layers));
    }
    model->kept = ChainTo(module, layer);
    // In call order, which ChainTo returned.
    for (const auto& name : model->kept) {
      JitChild wrapped(module.attr(name).toModule());
      model->parameter_count += wrapped->ParameterCount();
      model->sequential->push_back(std::string(name), wrapped);
    }
  }  // The parent module goes here, and with it every child not kept: their memory is released.

  model->sequential->eval();
  model->sequential->to(device);
  model->layer = layer;
  model->device = device;
  return model;
}

torch::Tensor Forward(const TruncatedModel& model, const torch::Tensor& input) {
  // InferenceMode is thread-local: it must be created on the thread that runs the forward.
  c10::InferenceMode guard;
  torch::Tensor on_device = input.to(model.device);
  torch::Tensor output = model.sequential.ptr()->forward(on_device);
  // A no-op for a contiguous float32 CPU output; a device-to-host copy for CUDA.
  return output.to(torch::kCPU, torch::kFloat).contiguous();
}

}  // namespace ltf

// Loading a TorchScript model and cutting it after a named top-level child.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace ltf {

// A top-level child of the model, as named_children() lists it.
struct LayerInfo {
  std::string name;
  std::string type;  // the class name without its module path: "Conv2d", "Sequential"
};

// The model cut after one layer: a Sequential of the children that lead to it, on its device.
// Immutable once built, so several threads may run forward() on it at once.
struct TruncatedModel {
  torch::nn::Sequential sequential;
  std::vector<LayerInfo> layers;  // every top-level child of the original model, in order
  std::vector<std::string> kept;  // the children in the Sequential, input first
  std::string layer;              // the cut: the last of `kept`
  int64_t parameter_count = 0;    // parameters held by `kept`
  torch::Device device = torch::kCPU;
};

// Loads a TorchScript file on the CPU. Throws NativeError(MODEL_LOAD_FAILED) with LibTorch's reason.
torch::jit::Module LoadModule(const std::string& path);

// The top-level children of a module, in registration order.
std::vector<LayerInfo> ListLayers(const torch::jit::Module& module);

// Loads `path`, keeps the children that the forward calls, in a chain, up to and including
// `layer`, releases the rest and moves what is kept to `device` in eval mode.
// Throws LAYER_NOT_FOUND, UNSUPPORTED_CUT (the forward does more than chain children up to the
// cut, so a Sequential would not reproduce it) or MODEL_LOAD_FAILED.
std::shared_ptr<TruncatedModel> Truncate(const std::string& path, const std::string& layer,
                                         torch::Device device);

// Runs the cut model on a CPU float tensor on the calling thread, under InferenceMode created
// here; returns a contiguous float32 CPU tensor.
torch::Tensor Forward(const TruncatedModel& model, const torch::Tensor& input);

}  // namespace ltf

// Loading a TorchScript model and cutting it at the layers asked for.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/model_options.h"
#include "graph/optimized_graph.h"
#include "runtime/forward_queue.h"

namespace ltf {

// Where a model comes from: a file, or bytes (Electron apps ship models inside asar archives,
// where native code cannot open a path).
struct ModelSource {
  std::string path;                          // when loading a file
  std::shared_ptr<const std::string> bytes;  // when loading from memory
};

// A top-level child of the model, as named_children() lists it.
struct LayerInfo {
  std::string name;
  std::string type;  // the class name without its module path: "Conv2d", "Sequential"
};

// The model cut at one or more layers, on its device. Immutable once built, apart from what
// `optimized` learns on the queue's thread.
struct CutModel {
  // Exactly one of these runs the model. The article's way, where the forward is a plain chain of
  // top-level children up to a single cut:
  torch::nn::Sequential sequential{nullptr};
  // Everywhere else: the forward graph cut at the layers, frozen; returns a tuple of tensors.
  std::optional<torch::jit::Module> graph;
  // Or with `optimize`: the same, optimised, checking itself against the plain cut. Its state
  // changes only on the queue's thread, which runs one forward at a time.
  std::shared_ptr<OptimizedGraph> optimized;

  std::vector<std::string> outputs;  // the layers returned, in order
  // Per output (graph cuts): true where it does not depend on the input (a parameter): every
  // caller gets it whole, never a share of its rows.
  std::vector<bool> input_free;
  std::vector<LayerInfo> layers;  // every top-level child of the original model
  std::vector<std::string> kept;  // the top-level children still used
  int64_t parameter_count = 0;    // parameters kept, each counted once
  torch::Device device = torch::kCPU;
  ModelOptions options;
  // Runs every forward of this model, one after another (runtime/forward_queue.h). Last: stopped before
  // what its jobs use goes.
  std::unique_ptr<ForwardQueue> queue;
};

// Loads a TorchScript model on the CPU, after reading its archive without running any of it
// (model/archive_check.h): a damaged file is MODEL_LOAD_FAILED, and code that reads or writes files is
// UNSAFE_MODEL unless `allow_unsafe_operations`. Throws NativeError(MODEL_NOT_FOUND,
// MODEL_LOAD_FAILED, UNSAFE_MODEL).
torch::jit::Module LoadModule(const ModelSource& source, bool allow_unsafe_operations);

// The top-level children of a module, in registration order.
std::vector<LayerInfo> ListLayers(const torch::jit::Module& module);

// Loads `source` and cuts it at `layers` (top-level or nested names). A single top-level layer
// that the forward reaches through a plain chain of children becomes a Sequential of those
// children; anything else is a cut of the forward graph. What is not kept is released.
// Throws LAYER_NOT_FOUND, UNSUPPORTED_CUT, MODEL_*, DEVICE_UNAVAILABLE, INVALID_ARGUMENT.
std::shared_ptr<CutModel> BuildCutModel(const ModelSource& source, const std::vector<std::string>& layers,
                                        const ModelOptions& options);

}  // namespace ltf

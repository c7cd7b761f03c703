#include "model/cut_model.h"

#include <sys/stat.h>

#include <sstream>

#include "common/errors.h"
#include "graph/graph_cut.h"
#include "graph/jit_child.h"
#include "graph/module_tree.h"
#include "graph/placement.h"
#include "graph/sequential_chain.h"
#include "model/archive_check.h"
#include "model/device.h"
#include "model/safety_check.h"
#include "runtime/forward.h"
#include "runtime/process_settings.h"

namespace ltf {

namespace {

std::string SourceName(const ModelSource& source) {
  return source.bytes ? "the model bytes (" + std::to_string(source.bytes->size()) + " bytes)"
                      : "'" + source.path + "'";
}

// The article's way: a Sequential of the children that chain up to `layer`; nullopt when the
// forward does anything else on the way (then the graph is cut instead).
std::optional<std::vector<std::string>> SequentialChain(const torch::jit::Module& module,
                                                        const std::string& layer) {
  bool top_level = false;
  for (const auto& child : module.named_children()) top_level = top_level || child.name == layer;
  if (!top_level) return std::nullopt;
  return FindChain(module, layer);
}

void BuildSequential(CutModel& model, const torch::jit::Module& module, std::vector<std::string> chain) {
  model.sequential = torch::nn::Sequential();
  for (const auto& name : chain) {
    torch::jit::Module child = module.attr(name).toModule();
    Place(child, model.device, model.options.dtype, model.options.channels_last);
    JitChild wrapped(child);
    model.parameter_count += wrapped->ParameterCount();
    model.sequential->push_back(std::string(name), wrapped);
  }
  model.kept = std::move(chain);
  model.sequential->eval();
}

}  // namespace

torch::jit::Module LoadModule(const ModelSource& source, bool allow_unsafe_operations) {
  // Everything done with a model off its forward queue (loading, cutting, freezing, summaries)
  // starts here: on one thread, so that this thread keeps no OpenMP team of its own.
  SerialOnThisThread();
  if (!source.bytes) {
    struct stat info {};
    if (stat(source.path.c_str(), &info) != 0) {
      throw NativeError(code::kModelNotFound, "model file not found: " + source.path);
    }
    if (S_ISDIR(info.st_mode)) {
      throw NativeError(code::kModelLoadFailed,
                        "model path is a directory, not a TorchScript file: " + source.path);
    }
  }
  // Nothing of the model runs before this: its code is read and checked, its tensors measured.
  const ArchiveReport archive = CheckArchive(source);
  if (!allow_unsafe_operations) RefuseUnsafe(archive.unsafe_operations);
  torch::jit::Module module;
  try {
    // Loaded on the CPU whatever the target device: only what is kept is moved.
    if (source.bytes) {
      std::istringstream stream(*source.bytes);
      module = torch::jit::load(stream, torch::Device(torch::kCPU));
    } else {
      module = torch::jit::load(source.path, torch::Device(torch::kCPU));
    }
  } catch (const c10::Error&) {
    throw NativeError(
        code::kModelLoadFailed,
        "could not load " + SourceName(source) + " as a TorchScript model: " + WhyNotTorchScript(source) +
            " (LibTorch: " + ClassifyError(std::current_exception(), code::kModelLoadFailed).message + ")");
  }
  // The loaded code again, as LibTorch compiled it (the same sources: a second look).
  if (!allow_unsafe_operations) RefuseUnsafe(module);
  return module;
}

std::vector<LayerInfo> ListLayers(const torch::jit::Module& module) {
  std::vector<LayerInfo> layers;
  for (const auto& child : module.named_children()) {
    layers.push_back({child.name, TypeName(child.value)});
  }
  return layers;
}

std::shared_ptr<CutModel> BuildCutModel(const ModelSource& source, const std::vector<std::string>& layers,
                                        const ModelOptions& options) {
  auto model = std::make_shared<CutModel>();
  model->options = options;
  // The device is resolved first, so that a missing GPU is reported before a long load.
  model->device = ResolveDevice(options.device);
  if (model->device.is_cpu() && options.dtype == torch::kHalf) {
    throw NativeError(code::kInvalidArgument,
                      "dtype 'float16' needs CUDA: LibTorch has no float16 convolutions on the CPU; "
                      "use 'bfloat16' or 'float32' there");
  }
  model->outputs = layers;
  // Fixed input shapes are the common case: let cuDNN time its algorithms once and keep the
  // fastest (process-wide, as torch.backends.cudnn.benchmark is).
  if (model->device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  {
    torch::jit::Module module = LoadModule(source, options.allow_unsafe_operations);
    module.eval();
    model->layers = ListLayers(module);
    std::optional<std::vector<std::string>> chain;
    // The optimised path always goes through the graph: freezing is what allows the rewrites.
    if (layers.size() == 1 && !options.optimize) chain = SequentialChain(module, layers.front());
    if (chain) {
      BuildSequential(*model, module, std::move(*chain));
    } else {
      GraphCut cut = CutGraph(module, layers, model->device, options.dtype, options.channels_last,
                              options.optimize, options.winograd);
      model->graph = std::move(cut.module);
      model->optimized = std::move(cut.optimized);
      model->kept = std::move(cut.kept);
      model->parameter_count = cut.parameter_count;
      model->input_free = std::move(cut.input_free);
    }
  }  // The original module goes here, and with it everything the cut does not use.
  model->queue = MakeQueue(*model);
  return model;
}

}  // namespace ltf

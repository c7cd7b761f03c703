#include "features.h"

#include <ATen/Parallel.h>

#include "cuda_precision.h"
#include "pinned.h"
#include "preprocess.h"

#include <optional>

namespace ltf {

namespace {

// Feature maps [N, C, ...] to vectors [N, C] (pool), and vectors to unit length (l2): in float32
// whatever the compute dtype, as F.adaptive_avg_pool2d / amax and F.normalize would.
torch::Tensor PostProcess(torch::Tensor output, const ModelOptions& options) {
  output = output.to(torch::kFloat);
  if (!options.pool.empty() && output.dim() > 2) {
    const auto flat = output.flatten(/*start_dim=*/2);
    output = options.pool == "avg" ? flat.mean(/*dim=*/2) : flat.amax(/*dim=*/2);
  }
  if (options.l2_normalize) {
    // F.normalize(x, p=2, dim=1, eps=1e-12) on every row.
    const auto rows = output.flatten(/*start_dim=*/1);
    const auto norms = rows.norm(2, /*dim=*/1, /*keepdim=*/true).clamp_min(1e-12);
    output = (rows / norms).view(output.sizes());
  }
  if (output.is_cuda() && static_cast<size_t>(output.numel()) * sizeof(float) <= kMaxPinnedBytes) {
    // Into page-locked memory, which the GPU writes by DMA at the bus's speed (pageable memory is
    // staged by the driver through a pinned buffer of its own, chunk by chunk). LibTorch's caching
    // host allocator keeps the block for the next call. The copy waits for the forward.
    auto host = torch::empty(output.sizes(), output.options().device(torch::kCPU).pinned_memory(true));
    host.copy_(output);
    return host;
  }
  return output.to(torch::kCPU).contiguous();  // no-op for a contiguous CPU tensor
}

// On the CPU, LibTorch's convolutions lose throughput past a few images per call (ResNet-18 at
// layer4 on 2 cores, frozen and optimised: 119 images/s at batch 8, 98 at batch 32; the working
// set of the activations outgrows the caches). Larger batches run in chunks of this size.
constexpr int64_t kCpuChunk = 8;

std::vector<torch::Tensor> Forward(const CutModel& model, const torch::Tensor& batch) {
  std::vector<torch::Tensor> outputs;
  if (model.sequential) {
    outputs.push_back(model.sequential.ptr()->forward(batch));
  } else if (model.optimized) {
    outputs = model.optimized->Forward(batch);
  } else {
    torch::jit::Module module = *model.graph;            // a handle: forward() is not const
    const c10::IValue result = module.forward({batch});  // the tuple must outlive the loop
    for (const auto& value : result.toTupleRef().elements()) outputs.push_back(value.toTensor());
  }
  return outputs;
}

std::vector<torch::Tensor> Run(const CutModel& model, torch::Tensor batch) {
  if (model.options.dtype != torch::kFloat) batch = batch.to(model.options.dtype);
  if (model.options.channels_last) batch = batch.contiguous(at::MemoryFormat::ChannelsLast);

  std::vector<torch::Tensor> outputs;
  if (model.device.is_cpu() && batch.size(0) > kCpuChunk) {
    std::vector<std::vector<torch::Tensor>> parts;
    for (const auto& chunk : batch.split(kCpuChunk)) parts.push_back(Forward(model, chunk));
    for (size_t i = 0; i < parts.front().size(); ++i) {
      std::vector<torch::Tensor> pieces;
      for (const auto& part : parts) pieces.push_back(part[i]);
      outputs.push_back(torch::cat(pieces));
    }
  } else {
    outputs = Forward(model, batch);
  }
  for (auto& output : outputs) output = PostProcess(output, model.options);
  return outputs;
}

}  // namespace

// LibTorch keeps one intra-op thread count for the process, but applies it to a thread only the
// first time that thread runs parallel work: set it on the thread that runs, every time.
void ApplyThreads(const ModelOptions& options) {
  if (options.threads > 0 && at::get_num_threads() != options.threads) at::set_num_threads(options.threads);
}

// Runs `make_batch` and the model on the model's executor thread, with its thread count, under
// InferenceMode (thread-local: created on the thread that runs the forward).
template <typename MakeBatch>
std::vector<torch::Tensor> OnExecutor(const CutModel& model, MakeBatch&& make_batch) {
  return model.executor->Run([&] {
    ApplyThreads(model.options);
    c10::InferenceMode guard;
    // cuDNN's TF32 switch is process-wide: held at this extractor's choice while it runs.
    std::optional<Tf32Scope> tf32;
    if (model.device.is_cuda() && model.options.dtype == torch::kFloat) tf32.emplace(model.options.tf32);
    return Run(model, make_batch());
  });
}

std::vector<torch::Tensor> RunOnTensor(const CutModel& model, const torch::Tensor& input) {
  // From pinned memory the upload is queued on the stream, ahead of the forward: not waited for.
  return OnExecutor(model, [&] { return input.to(model.device, /*non_blocking=*/input.is_pinned()); });
}

std::vector<torch::Tensor> RunOnImages(const CutModel& model, const ImageBatch& images) {
  return OnExecutor(model, [&] { return PreprocessImages(images, model.options.preprocess, model.device); });
}

}  // namespace ltf

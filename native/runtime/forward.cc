#include "runtime/forward.h"

#include <ATen/Parallel.h>

#include "runtime/cuda_precision.h"
#include "runtime/pinned.h"
#include "runtime/preprocess.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <thread>
#include <utility>

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

// Whether output `i` does not depend on the input (graph/graph_cut.h): not split into rows.
bool InputFree(const CutModel& model, size_t i) { return i < model.input_free.size() && model.input_free[i]; }

// Larger batches run in chunks of this size on the CPU (see kCpuMaxBatch).
constexpr int64_t kCpuChunk = kCpuMaxBatch;

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
  // One pass over the input for both (a 4-D input: channels-last needs four dimensions).
  const bool channels_last = model.options.channels_last && batch.dim() == 4;
  if (model.options.dtype != batch.scalar_type() || channels_last) {
    batch = batch.to(model.options.dtype == torch::kFloat ? batch.scalar_type() : model.options.dtype,
                     /*non_blocking=*/false, /*copy=*/false,
                     channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Preserve);
  }

  std::vector<torch::Tensor> outputs;
  if (model.device.is_cpu() && batch.size(0) > kCpuChunk) {
    const auto chunks = batch.split(kCpuChunk);
    std::vector<std::vector<torch::Tensor>> parts;
    bool by_rows = true;  // every output that depends on the input has a row per input row
    for (const auto& chunk : chunks) {
      parts.push_back(Forward(model, chunk));
      for (size_t i = 0; i < parts.back().size(); ++i) {
        const auto& part = parts.back()[i];
        if (!InputFree(model, i) && (part.dim() == 0 || part.size(0) != chunk.size(0))) by_rows = false;
      }
      if (!by_rows) break;
    }
    if (!by_rows) {
      outputs = Forward(model, batch);  // one forward: chunks of a node that mixes rows would not add up
    } else {
      for (size_t i = 0; i < parts.front().size(); ++i) {
        if (InputFree(model, i)) {  // the same in every chunk
          outputs.push_back(parts.front()[i]);
          continue;
        }
        std::vector<torch::Tensor> pieces;
        for (const auto& part : parts) pieces.push_back(part[i]);
        outputs.push_back(torch::cat(pieces));
      }
    }
  } else {
    outputs = Forward(model, batch);
  }
  for (auto& output : outputs) output = PostProcess(output, model.options);
  return outputs;
}

// The intra-op threads when the options name none: OMP_NUM_THREADS if set, else the CPUs this
// process may run on. Not LibTorch's own default, which counts physical cores through cpuinfo: on
// this project's 2-core VM it finds 1 (PyTorch there says torch.get_num_threads() == 1), and it
// was applied only once a forward reached at::parallel_for. So an optimised cut, whose oneDNN
// kernels never call it, ran on OpenMP's 2 threads until a plain forward ran on the same thread,
// and on 1 afterwards (89 -> 50 images/s at batch 8 once optimize's check ran its plain cut).
int DefaultThreads() {
  static const int threads = [] {
    if (const char* env = std::getenv("OMP_NUM_THREADS")) {
      const int n = std::atoi(env);
      if (n > 0) return n;
    }
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return threads;
}

// LibTorch keeps one intra-op thread count for the process, but applies it to a thread only the
// first time that thread runs parallel work: set it on the thread that runs, every time.
void ApplyThreads(const ModelOptions& options) {
  const int threads = options.threads > 0 ? options.threads : DefaultThreads();
  if (at::get_num_threads() != threads) at::set_num_threads(threads);
}

torch::Tensor ToDevice(const CutModel& model, const ForwardJob& job) {
  // From pinned memory the upload is queued on the stream, ahead of the forward: not waited for.
  if (job.tensor.defined()) return job.tensor.to(model.device, /*non_blocking=*/job.tensor.is_pinned());
  return PreprocessImages(job.images, model.options.preprocess, model.device);
}

void Settle(ForwardJob& job, Outcome outcome) {
  auto settle = std::move(job.settle);
  job.settle = nullptr;  // settled once
  try {
    if (settle) settle(std::move(outcome));
  } catch (...) {
    // settle only hands the outcome on; nothing of it may end the queue's thread
  }
}

// Runs jobs[begin, end), whose inputs have the same shape, as one forward and gives each its rows.
void RunTogether(const CutModel& model, std::vector<ForwardJob>& jobs, std::vector<torch::Tensor>& inputs,
                 size_t begin, size_t end) {
  std::vector<int64_t> rows_of;  // read now: a single input is moved into the forward
  int64_t total_rows = 0;
  for (size_t i = begin; i < end; ++i) {
    rows_of.push_back(inputs[i].size(0));
    total_rows += rows_of.back();
  }
  std::vector<torch::Tensor> outputs;
  std::optional<ErrorInfo> error = Capture(code::kForwardFailed, [&] {
    if (end - begin == 1) {
      outputs = Run(model, std::move(inputs[begin]));
    } else {
      std::vector<torch::Tensor> parts(inputs.begin() + begin, inputs.begin() + end);
      outputs = Run(model, torch::cat(parts));
    }
  });
  // Rows can be shared out only where every output that depends on the input has one row per
  // input row (a node that mixes rows, or reshapes them away, has not).
  bool splittable = true;
  for (size_t i = 0; !error && i < outputs.size(); ++i) {
    if (!InputFree(model, i) && (outputs[i].dim() == 0 || outputs[i].size(0) != total_rows))
      splittable = false;
  }
  if ((error || !splittable) && end - begin > 1) {
    // Each alone, so that each gets its own outcome (a batch too large for memory, say).
    for (size_t i = begin; i < end; ++i) RunTogether(model, jobs, inputs, i, i + 1);
    return;
  }
  int64_t row = 0;
  for (size_t i = begin; i < end; ++i) {
    const int64_t rows = rows_of[i - begin];
    Outcome outcome;
    if (error) {
      outcome.error = error;
    } else if (end - begin == 1) {
      outcome.outputs = std::move(outputs);
    } else {
      for (size_t k = 0; k < outputs.size(); ++k) {
        outcome.outputs.push_back(InputFree(model, k) ? outputs[k] : outputs[k].narrow(0, row, rows));
      }
    }
    row += rows;
    Settle(jobs[i], std::move(outcome));
  }
}

}  // namespace

std::unique_ptr<ForwardQueue> MakeQueue(const CutModel& model) {
  int64_t max_batch = model.options.max_batch;
  if (max_batch <= 0) max_batch = model.device.is_cuda() ? kCudaMaxBatch : kCpuMaxBatch;
  return std::make_unique<ForwardQueue>(RunJobs, max_batch, model.options.max_queue);
}

void RunJobs(std::vector<ForwardJob>& jobs) {
  const CutModel& model = *jobs.front().model;
  ApplyThreads(model.options);
  c10::InferenceMode guard;
  // cuDNN's TF32 switch is process-wide: held at this extractor's choice while it runs.
  std::optional<Tf32Scope> tf32;
  if (model.device.is_cuda() && model.options.dtype == torch::kFloat) tf32.emplace(model.options.tf32);

  std::vector<torch::Tensor> inputs(jobs.size());
  std::vector<bool> ready(jobs.size(), false);
  for (size_t i = 0; i < jobs.size(); ++i) {
    auto error = Capture(code::kForwardFailed, [&] { inputs[i] = ToDevice(model, jobs[i]); });
    if (error) {
      Settle(jobs[i], Outcome{{}, error});
    } else {
      ready[i] = true;
    }
  }
  // Runs of consecutive jobs whose inputs have the same shape (C, H, W), one forward each.
  for (size_t begin = 0; begin < jobs.size();) {
    if (!ready[begin]) {
      ++begin;
      continue;
    }
    size_t end = begin + 1;
    while (end < jobs.size() && ready[end] && inputs[end].dim() == inputs[begin].dim() &&
           inputs[end].sizes().slice(1) == inputs[begin].sizes().slice(1)) {
      ++end;
    }
    RunTogether(model, jobs, inputs, begin, end);
    begin = end;
  }
}

}  // namespace ltf

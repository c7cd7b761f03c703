// Running a cut model: inputs to the device, forward, pooling and normalisation, results to the
// host. Every forward runs on the model's queue thread (runtime/forward_queue.h).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model/cut_model.h"
#include "runtime/forward_queue.h"

namespace ltf {

// The most rows run as one forward by default: on the CPU, LibTorch's convolutions lose
// throughput past a few images per call (ResNet-18 at layer4 on 2 cores, frozen and optimised:
// 119 images/s at batch 8, 98 at batch 32; the working set outgrows the caches); on CUDA, larger
// batches keep the GPU busy.
inline constexpr int64_t kCpuMaxBatch = 8;
inline constexpr int64_t kCudaMaxBatch = 32;

// The model's forward queue, running RunJobs (made once the model is built: model/cut_model.cc).
std::unique_ptr<ForwardQueue> MakeQueue(const CutModel& model);

// Runs jobs taken together from the queue (runtime/forward_queue.h), on its thread, with the model's
// thread count, under InferenceMode: each job's input goes to the device, consecutive jobs whose
// inputs have the same shape run as one forward, and each job is settled with its own rows (one
// contiguous float32 CPU tensor per output layer, pooled and normalised as the model's options
// say; in pinned memory for a CUDA model: the download is one DMA transfer).
void RunJobs(std::vector<ForwardJob>& jobs);

// Whether inputs for `model` are best staged in pinned host memory (a CUDA model).
inline bool WantsPinnedInput(const CutModel& model) { return model.device.is_cuda(); }

}  // namespace ltf

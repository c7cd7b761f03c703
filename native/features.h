// Running a cut model: input to the device, forward, pooling and normalisation, result to the host.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "preprocess.h"
#include "truncate.h"

namespace ltf {

// Runs `model` on a float32 CPU batch [N, C, H, W] on the model's executor thread (the caller
// waits), under InferenceMode created there. Returns one contiguous float32 CPU tensor per output
// layer, pooled and normalised as the model's options say (in pinned memory for a CUDA model: the
// download is one DMA transfer).
std::vector<torch::Tensor> RunOnTensor(const CutModel& model, const torch::Tensor& input);

// The same for uint8 images, preprocessed on the model's device.
std::vector<torch::Tensor> RunOnImages(const CutModel& model, const ImageBatch& images);

// Whether inputs for `model` are best staged in pinned host memory (a CUDA model).
inline bool WantsPinnedInput(const CutModel& model) { return model.device.is_cuda(); }

}  // namespace ltf

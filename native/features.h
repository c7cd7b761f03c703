// Running a cut model: input to the device, forward, pooling and normalisation, result to the host.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "truncate.h"

namespace ltf {

// Runs `model` on a float32 CPU batch [N, C, H, W] on the model's executor thread (the caller
// waits), under InferenceMode created there. Returns one contiguous float32 CPU tensor per output
// layer, pooled and normalised as the model's options say.
std::vector<torch::Tensor> RunOnTensor(const CutModel& model, const torch::Tensor& input);

// The same for images: uint8 [H, W, C] CPU tensors, preprocessed on the model's device.
std::vector<torch::Tensor> RunOnImages(const CutModel& model, const std::vector<torch::Tensor>& images);

}  // namespace ltf

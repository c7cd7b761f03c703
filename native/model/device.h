// Which device an extractor runs on.
#pragma once

#include <torch/torch.h>

#include <string>

namespace ltf {

// Resolves a device request from lib/options.ts: "auto" (CUDA 0 when LibTorch sees a GPU, else the
// CPU), "cpu", "cuda" or "cuda:N". An explicit CUDA request that cannot be met is an error with
// code DEVICE_UNAVAILABLE, never a silent fallback to the CPU.
torch::Device ResolveDevice(const std::string& request);

// "cpu" or "cuda:N": the name lib/ shows users.
std::string DeviceName(const torch::Device& device);

}  // namespace ltf

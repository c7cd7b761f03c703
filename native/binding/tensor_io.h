// Moving tensors across the JS boundary: inputs are copied out of JS memory, outputs are copied
// into memory that JavaScript allocated (Electron's V8 memory cage forbids external buffers).
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <vector>

#include "runtime/pinned.h"
#include "runtime/preprocess.h"

namespace ltf {

// Copies a Float32Array and its shape (validated by lib/input.ts; asserted again here so that no
// call can read out of bounds) into a new CPU tensor, in pinned (page-locked) memory when
// `pinned`: what a CUDA model takes, so that the upload is one DMA transfer that need not be
// waited for. The caller may reuse its buffer at once. Main thread only. Throws
// NativeError(INVALID_INPUT).
torch::Tensor InputFromJs(const Napi::Value& data, const Napi::Value& shape, bool pinned);

// Copies images [{ data: Uint8Array | Uint8ClampedArray, width, height, channels: 3 | 4 }] (HWC,
// validated by lib/input.ts) into uint8 CPU tensors: one [N, H, W, C] tensor when all have the same
// size (pinned when `pinned`), else one [H, W, C] each. Main thread only.
ImageBatch ImagesFromJs(const Napi::Value& images, bool pinned);

// Copies a contiguous float32 CPU tensor into { data: Float32Array, shape: number[] }.
// Main thread only.
Napi::Object OutputToJs(Napi::Env env, const torch::Tensor& tensor);

// OutputToJs for each tensor: an array, in the order of the model's outputs.
Napi::Array OutputsToJs(Napi::Env env, const std::vector<torch::Tensor>& tensors);

}  // namespace ltf

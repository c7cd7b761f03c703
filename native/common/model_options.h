// What an extractor is built with, as lib/options.ts normalised it (binding/entry_points.cc reads it from
// JS).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace ltf {

// The transform applied to images (never to tensors given as float32), on the model's device:
// torchvision's Resize(resize) + CenterCrop(crop) + ToTensor + Normalize(mean, std).
struct Preprocess {
  int64_t resize = 256;                           // shorter side; 0: no resize
  int64_t crop = 224;                             // centre square; 0: no crop
  std::vector<double> mean{0.485, 0.456, 0.406};  // empty: no normalisation
  std::vector<double> std{0.229, 0.224, 0.225};
};

struct ModelOptions {
  std::string device = "auto";  // "auto" | "cpu" | "cuda" | "cuda:N"
  torch::Dtype dtype = torch::kFloat;
  bool channels_last = false;
  std::string pool;           // "" | "avg" | "max": over every dimension after the channels
  bool l2_normalize = false;  // divide each [N, ...] row by its L2 norm, after pooling
  // Freeze with LibTorch's inference optimisations: conv-bn folding, and on the CPU oneDNN
  // (MKLDNN) layouts and prepacked weights. Numbers move by float rounding (about 1e-6 relative).
  bool optimize = false;
  // With `optimize` on the CPU: 3x3 stride-1 convolutions may use oneDNN's Winograd algorithm.
  bool winograd = true;
  // On CUDA in float32: let cuDNN's convolutions use TF32 (about 1e-3 relative; faster on tensor
  // cores). Off: float32 means float32, as on the CPU.
  bool tf32 = false;
  int threads = 0;                       // LibTorch's intra-op threads (process-wide); 0: leave as it is
  bool allow_unsafe_operations = false;  // run models whose code reads or writes files
  // Calls queued behind each other run as one forward up to this many rows (runtime/forward_queue.h);
  // 0: the device's default (kDefaultMaxBatch in runtime/forward.h).
  int64_t max_batch = 0;
  int64_t max_queue = 0;  // calls waiting at most; 0: no limit
  Preprocess preprocess;
};

}  // namespace ltf

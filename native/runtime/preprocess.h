// Images in: uint8 pixels go to the device as they are and are resized, cropped, scaled and
// normalised there, as torchvision's tensor transforms do.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "common/model_options.h"

namespace ltf {

// uint8 images copied out of JS memory, HWC, C = 3 (RGB) or 4 (RGBA: alpha is dropped).
struct ImageBatch {
  // [N, H, W, C] when every image has the same height, width and channels (the common case: one
  // upload, preprocessed as one batch); in pinned memory when the model runs on CUDA.
  torch::Tensor stacked;
  // Otherwise one [H, W, C] tensor per image.
  std::vector<torch::Tensor> images;
};

// Returns a float32 batch [N, 3, h, w] on `device`. Matches torchvision's Resize(antialias=True) +
// CenterCrop + ConvertImageDtype + Normalize on uint8 tensors: bilinear with antialiasing, rounded
// back to integers after the resize as torchvision does for uint8 images. Throws INVALID_INPUT when
// the images do not come out the same size (no crop and different sizes).
torch::Tensor PreprocessImages(const ImageBatch& images, const Preprocess& options, torch::Device device);

}  // namespace ltf

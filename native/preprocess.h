// Images in: uint8 pixels go to the device as they are and are resized, cropped, scaled and
// normalised there, as torchvision's tensor transforms do.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model_options.h"

namespace ltf {

// `images`: uint8 CPU tensors [H, W, C], C = 3 (RGB) or 4 (RGBA: alpha is dropped). Returns a
// float32 batch [N, 3, h, w] on `device`. Matches torchvision 0.14's Resize(antialias=True) +
// CenterCrop + ConvertImageDtype + Normalize on uint8 tensors: bilinear with antialiasing, rounded
// back to integers after the resize as torchvision does for uint8 images. Throws INVALID_INPUT when
// the images do not come out the same size (no crop and different sizes).
torch::Tensor PreprocessImages(const std::vector<torch::Tensor>& images, const Preprocess& options,
                               torch::Device device);

}  // namespace ltf

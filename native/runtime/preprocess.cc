#include "runtime/preprocess.h"

#include <cmath>

#include "common/errors.h"

namespace ltf {

namespace {

// torchvision's Resize(size) with one int: the shorter side becomes `size`, the longer keeps the
// aspect ratio, truncated (int(size * long / short)).
std::pair<int64_t, int64_t> ResizedSize(int64_t height, int64_t width, int64_t size) {
  if (height <= width) {
    return {size, static_cast<int64_t>(static_cast<double>(size) * width / height)};
  }
  return {static_cast<int64_t>(static_cast<double>(size) * height / width), size};
}

// torchvision's CenterCrop: zero-pads an image smaller than the crop, then takes the centre.
torch::Tensor CenterCrop(torch::Tensor image, int64_t crop) {
  int64_t height = image.size(2), width = image.size(3);
  if (height < crop || width < crop) {
    const int64_t left = width < crop ? (crop - width) / 2 : 0;
    const int64_t top = height < crop ? (crop - height) / 2 : 0;
    const int64_t right = width < crop ? (crop - width + 1) / 2 : 0;
    const int64_t bottom = height < crop ? (crop - height + 1) / 2 : 0;
    image = torch::constant_pad_nd(image, {left, right, top, bottom}, 0);
    height = image.size(2);
    width = image.size(3);
  }
  // Python's round(), as torchvision uses: halves go to the even neighbour (26.5 -> 26).
  const auto top = static_cast<int64_t>(std::nearbyint((height - crop) / 2.0));
  const auto left = static_cast<int64_t>(std::nearbyint((width - crop) / 2.0));
  return image.slice(2, top, top + crop).slice(3, left, left + crop);
}

// Resize and crop of a float32 batch [N, 3, H, W] of pixel values 0..255 on the device.
torch::Tensor ResizeAndCrop(torch::Tensor images, const Preprocess& options) {
  if (options.resize > 0) {
    const auto [height, width] = ResizedSize(images.size(2), images.size(3), options.resize);
    // torchvision returns an image whose shorter side already has the size unchanged; the
    // antialiased filter at scale 1 is the identity anyway, so skipping it changes no value.
    if (height != images.size(2) || width != images.size(3)) {
      images = at::_upsample_bilinear2d_aa(images, {height, width}, /*align_corners=*/false);
      // torchvision resizes uint8 images in float and rounds the result back to uint8.
      images = images.round_().clamp_(0, 255);
    }
  }
  if (options.crop > 0) images = CenterCrop(images, options.crop);
  return images;
}

// uint8 [N, H, W, C] on any device to float32 [N, 3, H, W] on `device`. uint8 crosses the bus: a
// quarter of the bytes of float32. From pinned memory the copy is queued, not waited for.
torch::Tensor ToDeviceFloat(const torch::Tensor& pixels, torch::Device device) {
  return pixels.to(device, /*non_blocking=*/pixels.is_pinned())
      .slice(/*dim=*/3, 0, 3)
      .permute({0, 3, 1, 2})
      .to(torch::kFloat);
}

}  // namespace

torch::Tensor PreprocessImages(const ImageBatch& images, const Preprocess& options, torch::Device device) {
  torch::Tensor result;
  if (images.stacked.defined()) {
    // One upload and one kernel per step for the whole batch (per image, a batch of 256 launched
    // thousands of small kernels).
    result = ResizeAndCrop(ToDeviceFloat(images.stacked, device), options);
  } else {
    std::vector<torch::Tensor> batch;
    batch.reserve(images.images.size());
    for (const auto& pixels : images.images) {
      batch.push_back(ResizeAndCrop(ToDeviceFloat(pixels.unsqueeze(0), device), options));
    }
    for (const auto& image : batch) {
      if (image.sizes() != batch.front().sizes()) {
        throw NativeError(code::kInvalidInput, "the images come out of preprocessing in different sizes (" +
                                                   std::to_string(batch.front().size(2)) + "x" +
                                                   std::to_string(batch.front().size(3)) + " and " +
                                                   std::to_string(image.size(2)) + "x" +
                                                   std::to_string(image.size(3)) +
                                                   "); set preprocess.crop, or give images of one size");
      }
    }
    result = torch::cat(batch, 0);
  }
  result.div_(255.0);
  if (!options.mean.empty()) {
    const auto shape = std::vector<int64_t>{1, 3, 1, 1};
    // float32, as torchvision's Normalize builds them from the image's dtype.
    const auto mean = torch::tensor(options.mean).to(device, torch::kFloat).view(shape);
    const auto std = torch::tensor(options.std).to(device, torch::kFloat).view(shape);
    result.sub_(mean).div_(std);
  }
  return result.contiguous();
}

}  // namespace ltf

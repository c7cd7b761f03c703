#include "binding/tensor_io.h"

#include "common/limits.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>

#include "common/errors.h"

namespace ltf {

namespace {

// Float32Array indices are limited to 2^53 - 1 in JS; far below that, V8 caps typed arrays, so a
// shape is accepted only if its product fits comfortably in int64 arithmetic.
constexpr int64_t kMaxElements = limits::kMaxTensorElements;

NativeError Invalid(const std::string& message) { return NativeError(code::kInvalidInput, message); }

std::vector<int64_t> ShapeFromJs(const Napi::Value& value) {
  if (!value.IsArray()) throw Invalid("shape must be an array of integers");
  const auto array = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const Napi::Value dim = array.Get(i);
    if (!dim.IsNumber()) throw Invalid("shape[" + std::to_string(i) + "] is not a number");
    const double number = dim.As<Napi::Number>().DoubleValue();
    if (!(number >= 1 && number <= static_cast<double>(kMaxElements)) ||
        number != static_cast<double>(static_cast<int64_t>(number))) {
      throw Invalid("shape[" + std::to_string(i) + "] must be a positive integer");
    }
    shape.push_back(static_cast<int64_t>(number));
  }
  return shape;
}

}  // namespace

torch::Tensor InputFromJs(const Napi::Value& data, const Napi::Value& shape_value, bool pinned) {
  if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Invalid("data must be a Float32Array");
  }
  const auto array = data.As<Napi::Float32Array>();
  const std::vector<int64_t> shape = ShapeFromJs(shape_value);

  int64_t elements = 1;
  for (int64_t dim : shape) {
    if (elements > kMaxElements / dim) throw Invalid("shape is too large");
    elements *= dim;
  }
  // A detached buffer reads as length 0, so it fails here too.
  if (static_cast<int64_t>(array.ElementLength()) != elements) {
    throw Invalid("data has " + std::to_string(array.ElementLength()) + " values but the shape holds " +
                  std::to_string(elements));
  }

  pinned = pinned && static_cast<size_t>(elements) * sizeof(float) <= kMaxPinnedBytes;
  torch::Tensor tensor = torch::empty(shape, torch::TensorOptions(torch::kFloat).pinned_memory(pinned));
  std::memcpy(tensor.data_ptr<float>(), array.Data(), static_cast<size_t>(elements) * sizeof(float));
  return tensor;
}

ImageBatch ImagesFromJs(const Napi::Value& value, bool pinned) {
  if (!value.IsArray()) throw Invalid("images must be an array");
  const auto array = value.As<Napi::Array>();
  struct View {
    Napi::TypedArray typed;
    int64_t dims[3];  // height, width, channels
  };
  std::vector<View> views;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const Napi::Value item = array.Get(i);
    if (!item.IsObject()) throw Invalid("images[" + std::to_string(i) + "] is not an object");
    const auto image = item.As<Napi::Object>();
    const Napi::Value data = image.Get("data");
    if (!data.IsTypedArray()) throw Invalid("images[" + std::to_string(i) + "].data is not a Uint8Array");
    const auto typed = data.As<Napi::TypedArray>();
    if (typed.TypedArrayType() != napi_uint8_array && typed.TypedArrayType() != napi_uint8_clamped_array) {
      throw Invalid("images[" + std::to_string(i) + "].data is not a Uint8Array");
    }
    View view{};
    const char* names[3] = {"height", "width", "channels"};
    for (int d = 0; d < 3; ++d) {
      const Napi::Value dim = image.Get(names[d]);
      const double number = dim.IsNumber() ? dim.As<Napi::Number>().DoubleValue() : -1;
      if (!(number >= 1 && number <= static_cast<double>(limits::kMaxImageSide)) ||
          number != static_cast<double>(static_cast<int64_t>(number))) {
        throw Invalid("images[" + std::to_string(i) + "]." + names[d] + " must be an integer from 1 to " +
                      std::to_string(limits::kMaxImageSide));
      }
      view.dims[d] = static_cast<int64_t>(number);
    }
    if (view.dims[2] != 3 && view.dims[2] != 4)
      throw Invalid("images[" + std::to_string(i) + "].channels must be 3 or 4");
    const int64_t bytes = view.dims[0] * view.dims[1] * view.dims[2];
    if (static_cast<int64_t>(typed.ByteLength()) != bytes) {
      throw Invalid("images[" + std::to_string(i) + "].data has " + std::to_string(typed.ByteLength()) +
                    " bytes, not height x width x channels = " + std::to_string(bytes));
    }
    view.typed = typed;
    views.push_back(view);
  }
  if (views.empty()) throw Invalid("no images given");

  // Pointers are taken only now that no more JS can run (a getter read above could have detached
  // an earlier image's buffer); a detached buffer reads as 0 bytes and is refused here.
  const auto pixels_of = [](const View& view) {
    const auto bytes = static_cast<size_t>(view.dims[0] * view.dims[1] * view.dims[2]);
    if (view.typed.ByteLength() != bytes) throw Invalid("an image's data changed size while it was read");
    return static_cast<const uint8_t*>(view.typed.ArrayBuffer().Data()) + view.typed.ByteOffset();
  };
  const auto same = [&](const View& v) {
    return std::equal(std::begin(v.dims), std::end(v.dims), std::begin(views.front().dims));
  };
  ImageBatch batch;
  if (std::all_of(views.begin(), views.end(), same)) {
    const auto* dims = views.front().dims;
    const auto bytes = static_cast<size_t>(dims[0] * dims[1] * dims[2]);
    pinned = pinned && bytes * views.size() <= kMaxPinnedBytes;
    batch.stacked = torch::empty({static_cast<int64_t>(views.size()), dims[0], dims[1], dims[2]},
                                 torch::TensorOptions(torch::kUInt8).pinned_memory(pinned));
    auto* target = batch.stacked.data_ptr<uint8_t>();
    for (size_t i = 0; i < views.size(); ++i) std::memcpy(target + i * bytes, pixels_of(views[i]), bytes);
    return batch;
  }
  for (const auto& view : views) {
    torch::Tensor pixels = torch::empty({view.dims[0], view.dims[1], view.dims[2]}, torch::kUInt8);
    std::memcpy(pixels.data_ptr<uint8_t>(), pixels_of(view), static_cast<size_t>(pixels.numel()));
    batch.images.push_back(std::move(pixels));
  }
  return batch;
}

Napi::Array OutputsToJs(Napi::Env env, const std::vector<torch::Tensor>& tensors) {
  auto outputs = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i)
    outputs.Set(static_cast<uint32_t>(i), OutputToJs(env, tensors[i]));
  return outputs;
}

Napi::Object OutputToJs(Napi::Env env, const torch::Tensor& tensor) {
  const auto elements = static_cast<size_t>(tensor.numel());
  // Float32Array::New allocates an ArrayBuffer that V8 owns.
  auto data = Napi::Float32Array::New(env, elements);
  if (elements > 0) std::memcpy(data.Data(), tensor.data_ptr<float>(), elements * sizeof(float));

  auto shape = Napi::Array::New(env, tensor.dim());
  for (int64_t i = 0; i < tensor.dim(); ++i) {
    shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(tensor.size(i))));
  }
  auto result = Napi::Object::New(env);
  result.Set("data", data);
  result.Set("shape", shape);
  return result;
}

}  // namespace ltf

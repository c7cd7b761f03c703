#include "winograd/winograd_op.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/custom_class.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/op_namespace.h"
#include "winograd/winograd_transforms.h"

namespace ltf {

class WinogradScratch {
 public:
  // A float buffer of at least `count` elements, valid until the next call. Call with lock() held.
  float* For(int64_t count) {
    if (buffer_.numel() < count) {
      buffer_ = at::Tensor();  // the old one goes first: never both at once
      buffer_ = at::empty({count}, at::TensorOptions().dtype(at::kFloat));
    }
    return buffer_.data_ptr<float>();
  }
  const at::Tensor& tensor() const { return buffer_; }
  std::mutex& lock() { return mutex_; }

 private:
  std::mutex mutex_;
  at::Tensor buffer_;
};

std::shared_ptr<WinogradScratch> MakeWinogradScratch() { return std::make_shared<WinogradScratch>(); }

namespace {

c10::optional<c10::OperatorHandle> FindOperator(const char* name) {
  return c10::Dispatcher::singleton().findSchema(c10::OperatorName(name, ""));
}

const c10::OperatorHandle& LinearOperator() {
  static const c10::OperatorHandle handle = *FindOperator("mkldnn::_linear_pointwise");
  return handle;
}

const c10::OperatorHandle& ConvolutionOperator(bool binary) {
  static const c10::OperatorHandle unary = *FindOperator("mkldnn::_convolution_pointwise");
  static const c10::OperatorHandle with_other =
      *c10::Dispatcher::singleton().findSchema(c10::OperatorName("mkldnn::_convolution_pointwise", "binary"));
  return binary ? with_other : unary;
}

// Fewer output tiles than this, and the products are bound by reading their weights (36 matrices
// of in x out: four times the convolution's own), so oneDNN's direct convolution is faster. Measured
// on ResNet-18's layers, 2 threads (BENCHMARKS.md, "Float32 on a Winograd of our own"): with the
// transforms counted, at batch 1 the 14x14 layers (16 tiles) and the 7x7 ones (4) ran faster
// direct, and at batch 2 the 7x7 ones (8).
constexpr int64_t kMinTiles = 32;

// The most transformed input held at once (and about as much again of products): a larger input is
// done a chunk of tiles at a time, so that memory does not grow with 2.25x each layer's activations
// (ResNet-18's 56x56 layers at batch 8, 14.4 MB, are one chunk).
constexpr int64_t kMaxChunkBytes = int64_t{16} << 20;

// at::parallel_for's grain: every thread takes part (ATen gives each thread one contiguous share of
// the tiles; the grain only caps how many threads there are).
constexpr int64_t kTileGrain = 1;

// One convolution: the transformed weights, packed, and what follows the convolution. In an
// unnamed namespace: its type identity is this copy's alone (LibTorch maps C++ types to classes by
// typeid), like onednn/onednn_op.cc's class.
class WinogradConv : public torch::CustomClassHolder {
 public:
  WinogradConv(const at::Tensor& weight, const std::optional<at::Tensor>& bias, bool relu,
               const std::optional<std::vector<int64_t>>& input_size,
               std::shared_ptr<WinogradScratch> scratch)
      : out_channels_(weight.size(0)),
        in_channels_(weight.size(1)),
        relu_(relu),
        scratch_(std::move(scratch)) {
    if (bias) bias_ = bias->to(at::kFloat).contiguous();
    const at::Tensor plain = weight.to(at::kFloat).contiguous();
    const auto reorder = FindOperator("mkldnn::_reorder_linear_weight");
    const int64_t tiles = input_size ? WinogradTiles(*input_size) : 0;
    for (int i = 0; i < winograd::kProducts; ++i) {
      at::Tensor transformed = at::empty({out_channels_, in_channels_}, plain.options());
      winograd::TransformWeights(plain.data_ptr<float>(), out_channels_, in_channels_, i,
                                 transformed.data_ptr<float>());
      torch::jit::Stack stack{std::move(transformed), tiles > 0 ? c10::IValue(tiles) : c10::IValue()};
      reorder->callBoxed(stack);
      packed_[i] = stack.at(0).toTensor();
    }
    // For inputs with few tiles (Run): the weight as oneDNN's direct convolution reads it.
    const auto conv_reorder = FindOperator("mkldnn::_reorder_convolution_weight");
    const std::vector<int64_t> ones{1, 1};
    // Packed for one image of the first input's size: the batches that take this path are small.
    std::optional<std::vector<int64_t>> one_image = input_size;
    if (one_image && one_image->size() == 4) (*one_image)[0] = 1;
    torch::jit::Stack stack{plain, ones,       ones,
                            ones,  int64_t{1}, one_image ? c10::IValue(*one_image) : c10::IValue()};
    conv_reorder->callBoxed(stack);
    direct_ = stack.at(0).toTensor();
  }

  at::Tensor Run(const at::Tensor& input, const c10::optional<at::Tensor>& residual) {
    TORCH_CHECK(input.dim() == 4 && input.scalar_type() == at::kFloat && input.device().is_cpu() &&
                    input.size(1) == in_channels_,
                "the Winograd convolution takes a float32 CPU input of ", in_channels_, " channels, got ",
                input.sizes());
    const at::Tensor x = input.contiguous(at::MemoryFormat::ChannelsLast);
    const std::vector<int64_t> out_size{x.size(0), out_channels_, x.size(2), x.size(3)};
    if (residual && (residual->sizes() != out_size || residual->scalar_type() != at::kFloat ||
                     !residual->device().is_cpu())) {
      // One that broadcasts, or of another dtype or device: added as LibTorch adds it.
      at::Tensor sum = at::add(Compute(x, at::Tensor(), false), *residual);
      return relu_ ? at::relu(sum) : sum;
    }
    return Compute(x, residual ? residual->contiguous(at::MemoryFormat::ChannelsLast) : at::Tensor(), relu_);
  }

 private:
  // The convolution of x (channels-last) plus the bias, plus r (channels-last, of the output's
  // size; undefined for none), then max(0, .) where `relu`.
  at::Tensor Compute(const at::Tensor& x, const at::Tensor& r, bool relu) const {
    const winograd::Shape shape{x.size(0), x.size(2), x.size(3), in_channels_, out_channels_};
    const int64_t tiles = shape.Tiles();
    if (tiles > 0 && tiles < kMinTiles) return Direct(x, r, relu);
    at::Tensor y = at::empty({shape.batch, out_channels_, shape.height, shape.width},
                             x.options().memory_format(at::MemoryFormat::ChannelsLast));
    if (y.numel() == 0) return y;
    const float* xp = x.data_ptr<float>();
    const float* bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
    const float* rp = r.defined() ? r.data_ptr<float>() : nullptr;
    float* yp = y.data_ptr<float>();
    const int64_t per_tile =
        winograd::kProducts * std::max(in_channels_, out_channels_) * int64_t{sizeof(float)};
    const int64_t chunk_tiles = std::max(kMinTiles, kMaxChunkBytes / per_tile);

    std::lock_guard<std::mutex> lock(scratch_->lock());
    for (int64_t first = 0; first < tiles; first += chunk_tiles) {
      const winograd::Chunk chunk{first, std::min(chunk_tiles, tiles - first)};
      const int64_t end = chunk.first + chunk.count;
      float* v = scratch_->For(winograd::kProducts * chunk.count * in_channels_);
      at::parallel_for(chunk.first, end, kTileGrain,
                       [&](int64_t b, int64_t e) { winograd::TransformInput(xp, shape, chunk, v, b, e); });
      const at::Tensor v_all = scratch_->tensor()
                                   .narrow(0, 0, winograd::kProducts * chunk.count * in_channels_)
                                   .view({winograd::kProducts, chunk.count, in_channels_});
      const auto products = Products(v_all);
      std::array<const float*, winograd::kProducts> m{};
      for (int64_t i = 0; i < winograd::kProducts; ++i) {
        TORCH_CHECK(products[i].is_contiguous() && products[i].scalar_type() == at::kFloat &&
                        products[i].numel() == chunk.count * out_channels_,
                    "mkldnn::_linear_pointwise returned an unexpected tensor");
        m[i] = products[i].data_ptr<float>();
      }
      at::parallel_for(chunk.first, end, kTileGrain, [&](int64_t b, int64_t e) {
        winograd::TransformOutput(m.data(), bias, rp, relu, shape, chunk, yp, b, e);
      });
    }
    return y;
  }

  // The 36 products of the transformed input `v` ([36][tiles][in]) with the packed weights. They
  // share the threads between them, each product on one thread, in one parallel region: with
  // oneDNN splitting each product, a convolution was 38 parallel regions, and where a process has
  // more OpenMP threads than cores (two extractors, each forward thread with its team) libgomp
  // stops spinning between regions and each one waits for threads to wake: ResNet-18 at batch 1
  // took 29 ms instead of 16.5. oneDNN runs a primitive on the calling thread alone inside a
  // parallel region.
  std::array<at::Tensor, winograd::kProducts> Products(const at::Tensor& v) const {
    std::array<at::Tensor, winograd::kProducts> products;
    const at::ThreadLocalState state;  // inference mode and the like, for the other threads
    at::parallel_for(0, winograd::kProducts, 1, [&](int64_t begin, int64_t end) {
      at::ThreadLocalStateGuard guard(state);
      const c10::IValue none;
      const c10::IValue attr(std::string("none"));
      const c10::IValue scalars(c10::List<c10::optional<at::Scalar>>{});
      for (int64_t i = begin; i < end; ++i) {
        torch::jit::Stack stack{v[i], packed_[i], none, attr, scalars, none};
        LinearOperator().callBoxed(stack);
        products[i] = stack.at(0).toTensor();
      }
    });
    return products;
  }

  // oneDNN's direct convolution with the same post-ops (Compute's arguments).
  at::Tensor Direct(const at::Tensor& x, const at::Tensor& residual, bool relu) const {
    const std::vector<int64_t> ones{1, 1};
    const c10::IValue none;
    const c10::IValue bias = bias_.defined() ? c10::IValue(bias_) : none;
    const c10::IValue scalars(c10::List<c10::optional<at::Scalar>>{});
    const c10::IValue unary = relu ? c10::IValue(std::string("relu")) : none;
    torch::jit::Stack stack;
    if (residual.defined()) {
      stack = {x,          residual,           direct_, bias,  ones,    ones, ones,
               int64_t{1}, std::string("add"), none,    unary, scalars, none};
    } else {
      stack = {x,       direct_, bias,       ones,
               ones,    ones,    int64_t{1}, relu ? std::string("relu") : std::string("none"),
               scalars, none};
    }
    ConvolutionOperator(residual.defined()).callBoxed(stack);
    return stack.at(0).toTensor();
  }

  int64_t out_channels_, in_channels_;
  bool relu_;
  std::array<at::Tensor, winograd::kProducts> packed_;  // [out][in] each, oneDNN's layout
  at::Tensor direct_;                                   // [out][in][3][3], oneDNN's layout
  at::Tensor bias_;
  std::shared_ptr<WinogradScratch> scratch_;
};

// This copy's operator namespace: "ltf_winograd_" and an address (common/op_namespace.h).
const std::string& OpNamespace() {
  static const std::string name = CopyNamespace("ltf_winograd_");
  return name;
}

// Registers the class and the operator the first time a graph needs them.
void RegisterOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Never destroyed: graphs that call the operator may outlive static destructors.
    auto* library = new torch::Library(torch::Library::DEF, OpNamespace(), c10::nullopt, __FILE__, __LINE__);
    library->class_<WinogradConv>("WinogradConv");
    const std::string schema = "winograd_conv(Tensor input, __torch__.torch.classes." + OpNamespace() +
                               ".WinogradConv conv, Tensor? residual) -> Tensor";
    library->def(schema.c_str(),
                 [](const at::Tensor& input, const c10::intrusive_ptr<WinogradConv>& conv,
                    const c10::optional<at::Tensor>& residual) { return conv->Run(input, residual); });
  });
}

}  // namespace

bool WinogradAvailable() {
  static const bool available = FindOperator("mkldnn::_linear_pointwise").has_value() &&
                                FindOperator("mkldnn::_reorder_linear_weight").has_value() &&
                                FindOperator("mkldnn::_convolution_pointwise").has_value() &&
                                c10::Dispatcher::singleton().findSchema(
                                    c10::OperatorName("mkldnn::_convolution_pointwise", "binary")) &&
                                FindOperator("mkldnn::_reorder_convolution_weight").has_value();
  return available;
}

bool WinogradSuits(const at::Tensor& weight, c10::IntArrayRef stride, c10::IntArrayRef padding,
                   c10::IntArrayRef dilation, int64_t groups) {
  auto all = [](c10::IntArrayRef values, int64_t expected) {
    for (int64_t value : values) {
      if (value != expected) return false;
    }
    return !values.empty();
  };
  return weight.dim() == 4 && weight.scalar_type() == at::kFloat && weight.device().is_cpu() &&
         weight.layout() == at::kStrided && weight.size(2) == 3 && weight.size(3) == 3 &&
         weight.size(0) >= 16 && weight.size(1) >= 16 && all(stride, 1) && all(padding, 1) &&
         all(dilation, 1) && groups == 1;
}

int64_t WinogradTiles(c10::IntArrayRef sizes) {
  if (sizes.size() != 4) return 0;
  return winograd::Shape{sizes[0], sizes[2], sizes[3], sizes[1], 0}.Tiles();
}

c10::IValue MakeWinogradConv(const at::Tensor& weight, const std::optional<at::Tensor>& bias, bool relu,
                             const std::optional<std::vector<int64_t>>& input_size,
                             std::shared_ptr<WinogradScratch> scratch) {
  RegisterOnce();
  return c10::IValue(c10::make_intrusive<WinogradConv>(weight, bias, relu, input_size, std::move(scratch)));
}

c10::Symbol WinogradConvSymbol() {  // registered by MakeWinogradConv, before any node can name it
  return c10::Symbol::fromQualString(OpNamespace() + "::winograd_conv");
}

}  // namespace ltf

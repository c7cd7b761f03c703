#include "onednn/onednn_op.h"

#ifdef LTF_WITH_ONEDNN

#include <torch/custom_class.h>
#include <torch/library.h>

#include <cstdint>
#include <deque>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/op_namespace.h"

namespace ltf {

namespace {

// A convolution and the primitives built for the input layouts and shapes it has seen.
// TorchScript holds it as a constant of this copy's custom class <ns>.OneDnnConv. In an unnamed
// namespace: its type identity is this copy's alone (LibTorch maps C++ types to classes by typeid).
class OneDnnConv : public torch::CustomClassHolder {
 public:
  explicit OneDnnConv(ConvSpec spec);

  // input and residual are MKLDNN tensors, as the frozen graph passes them; so is the result.
  at::Tensor Run(const at::Tensor& input, const c10::optional<at::Tensor>& residual);

 private:
  struct Plan {
    dnnl::memory::desc src;  // the input layout this plan was made for
    bool sum = false;
    bool activation = false;
    dnnl::convolution_forward primitive;
    dnnl::convolution_forward::primitive_desc descriptor;
    std::shared_ptr<dnnl::memory> weights;  // reordered for this primitive
  };
  // Plans are few (one per input shape); the oldest goes past this many, with its weights.
  static constexpr size_t kMaxPlans = 8;

  const Plan& PlanFor(const dnnl::memory::desc& src, bool sum, bool activation);
  Plan MakePlan(const dnnl::memory::desc& src, bool sum, bool activation);
  at::Tensor Execute(const ideep::tensor& input, const ideep::tensor* residual, bool activation,
                     const at::Tensor& like);
  // The weights in `layout`: spec_.weights itself where it is in that layout already, else a
  // copy made from it.
  std::shared_ptr<dnnl::memory> PackWeights(const dnnl::memory::desc& layout);

  ConvSpec spec_;
  dnnl::memory::dims weight_dims_;  // OIHW
  // One forward at a time per model (runtime/forward_queue.h), but the plan cache is guarded anyway.
  std::mutex mutex_;
  std::deque<Plan> plans_;  // most recently made first
};

using dnnl::memory;
using Dims = memory::dims;

// oneDNN's failures as LibTorch's, so that the forward's error handling (common/errors.h) classifies them.
template <typename F>
auto Translate(F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const dnnl::error& e) {
    if (e.status == dnnl_out_of_memory) throw std::bad_alloc();
    TORCH_CHECK(false, "oneDNN convolution failed: ", e.what());
  }
}

Dims OutputDims(const Dims& input, const Dims& weights, const ConvSpec& spec) {
  Dims out{input[0], weights[0]};
  for (size_t i = 0; i < 2; ++i) {
    out.push_back((input[2 + i] + 2 * spec.padding[i] - spec.dilation[i] * (weights[2 + i] - 1) - 1) /
                      spec.stride[i] +
                  1);
  }
  return out;
}

dnnl::post_ops PostOps(const ConvSpec& spec, bool sum, bool activation) {
  dnnl::post_ops ops;
  // The residual is added to what dst holds before the activation, as in `relu(conv(x) + identity)`.
  if (sum) ops.append_sum(1.f);
  if (activation) {
    switch (spec.activation.kind) {
      case Activation::Kind::kRelu:
        ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
        break;
      case Activation::Kind::kClip:
        ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, spec.activation.low, spec.activation.high);
        break;
      case Activation::Kind::kSilu:
        ops.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.f, 0.f);  // x * sigmoid(1 * x)
        break;
      case Activation::Kind::kNone:
        break;
    }
  }
  return ops;
}

// The activation, applied by LibTorch to a dense tensor (the rare path below).
void ApplyActivation(const Activation& activation, at::Tensor& dense) {
  switch (activation.kind) {
    case Activation::Kind::kRelu:
      dense.relu_();
      break;
    case Activation::Kind::kClip:
      dense.clamp_(activation.low, activation.high);
      break;
    case Activation::Kind::kSilu:
      at::silu_(dense);
      break;
    case Activation::Kind::kNone:
      break;
  }
}

// F(4x4, 3x3) holds weights 4x the size of the convolution's (36 values per 3x3 kernel), and
// streams them from memory on every call; the multiplications it saves grow with the pixels the
// call produces. Both scale with the channels squared, so the pixels decide: below this many
// (batch x output height x width) it does not pay. Measured on ResNet-18's layer4 (7x7) at batch
// 8 (392 pixels): as fast as the direct algorithm, for 113 MiB more (BENCHMARKS.md).
// F(2x2, 3x3), which oneDNN picks for batches of 1 or 2, holds 1.8x the weights and paid there.
constexpr int64_t kMinWinogradPixels = 400;

bool WinogradPays(const dnnl::convolution_forward::primitive_desc& descriptor, const Dims& output) {
  const auto& weights = descriptor.weights_desc().data;
  const bool f4x4 = weights.format_kind == dnnl_format_kind_wino && weights.format_desc.wino_desc.alpha == 6;
  return !f4x4 || output[0] * output[2] * output[3] >= kMinWinogradPixels;
}

// The channel block of oneDNN's native layout on this CPU: 16 with AVX-512, 8 with SSE4.1 to
// AVX2; 0 where there is none to prefer. Asking for another CPU's layout gets oneDNN's reference
// kernels (16-channel blocks on an AVX2 CPU: 21 s per ResNet-18 forward instead of 0.13 s).
int64_t NativeChannelBlock() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_mic:
    case dnnl::cpu_isa::avx512_mic_4ops:
    case dnnl::cpu_isa::avx512_core:
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx:
      return 16;
    case dnnl::cpu_isa::sse41:
    case dnnl::cpu_isa::avx:
    case dnnl::cpu_isa::avx2:
    case dnnl::cpu_isa::avx2_vnni:
      return 8;
    default:
      return 0;
  }
}

}  // namespace

bool CpuSuitsOneDnnFusion() {
  // oneDNN's ISA values are bit sets: each includes the ISAs below it.
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  return (isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2;
}

namespace {

bool IsReference(const dnnl::convolution_forward::primitive_desc& descriptor) {
  return std::string(descriptor.impl_info_str()).rfind("ref", 0) == 0;
}

}  // namespace

memory Scratchpad::For(const memory::desc& desc) {
  const size_t size = desc.get_size();
  if (size > size_) {
    buffer_.reset();  // the old one goes first: no moment with both
    buffer_.reset(new char[size + 64]);
    size_ = size;
  }
  // oneDNN wants its buffers aligned to 64 bytes.
  const auto address = reinterpret_cast<uintptr_t>(buffer_.get());
  return memory(desc, ideep::engine::cpu_engine(), buffer_.get() + ((64 - address % 64) % 64));
}

OneDnnConv::OneDnnConv(ConvSpec spec) : spec_(std::move(spec)), weight_dims_(spec_.weights.sizes().vec()) {}

OneDnnConv::Plan OneDnnConv::MakePlan(const memory::desc& src, bool sum, bool activation) {
  const auto& engine = ideep::engine::cpu_engine();
  const Dims input = src.dims();
  const Dims& weights = weight_dims_;
  const Dims strides(spec_.stride.begin(), spec_.stride.end());
  const Dims padding(spec_.padding.begin(), spec_.padding.end());
  Dims dilation;  // oneDNN counts dilation from 0 (no gaps), LibTorch from 1
  for (int64_t d : spec_.dilation) dilation.push_back(d - 1);
  auto any = [](const Dims& dims) {
    return memory::desc(dims, memory::data_type::f32, memory::format_tag::any);
  };
  // Every result in oneDNN's native channel blocks (16 with AVX-512: the layout Winograd reads and
  // writes): left free, direct convolutions pick channels-last, and each layer would pay a
  // reorder to the next.
  const Dims output = OutputDims(input, weight_dims_, spec_);
  static const int64_t block = NativeChannelBlock();
  const memory::desc blocked =
      block > 0 && weights[0] % block == 0
          ? memory::desc(output, memory::data_type::f32,
                         block == 16 ? memory::format_tag::aBcd16b : memory::format_tag::aBcd8b)
          : any(output);
  dnnl::primitive_attr attr;
  attr.set_post_ops(PostOps(spec_, sum, activation));
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

  // A primitive for one algorithm and result layout; nullopt where oneDNN has no kernel for it.
  auto describe = [&](dnnl::algorithm algorithm,
                      const memory::desc& dst) -> std::optional<dnnl::convolution_forward::primitive_desc> {
    const auto kind = dnnl::prop_kind::forward_inference;
    try {
      auto desc = spec_.bias.is_empty()
                      ? dnnl::convolution_forward::desc(kind, algorithm, any(input), any(weights), dst,
                                                        strides, dilation, padding, padding)
                      : dnnl::convolution_forward::desc(kind, algorithm, any(input), any(weights),
                                                        spec_.bias.get_desc(), dst, strides, dilation,
                                                        padding, padding);
      return dnnl::convolution_forward::primitive_desc(desc, attr, engine);
    } catch (const dnnl::error&) {
      return std::nullopt;
    }
  };

  Plan plan;
  std::optional<dnnl::convolution_forward::primitive_desc> chosen;
  // Winograd, where oneDNN has a kernel for this CPU and shape and it pays (WinogradPays).
  if (spec_.winograd) {
    chosen = describe(dnnl::algorithm::convolution_winograd, blocked);
    if (chosen && !WinogradPays(*chosen, output)) chosen.reset();
  }
  // Else the direct algorithm in the native blocks, unless only a reference kernel takes them;
  // then in oneDNN's own choice of layout, which always has a kernel.
  if (!chosen) {
    chosen = describe(dnnl::algorithm::convolution_direct, blocked);
    if (!chosen || IsReference(*chosen)) chosen = describe(dnnl::algorithm::convolution_direct, any(output));
  }
  if (!chosen) {
    throw dnnl::error(dnnl_unimplemented, "no oneDNN convolution kernel for this shape");
  }
  plan.descriptor = *chosen;
  plan.src = src;
  plan.sum = sum;
  plan.activation = activation;
  plan.primitive = dnnl::convolution_forward(plan.descriptor);
  // Weights are reordered once per layout they are needed in, and shared between plans.
  const memory::desc weights_desc = plan.descriptor.weights_desc();
  for (const Plan& other : plans_) {
    if (other.descriptor.weights_desc() == weights_desc) plan.weights = other.weights;
  }
  if (!plan.weights) plan.weights = PackWeights(weights_desc);
  return plan;
}

std::shared_ptr<memory> OneDnnConv::PackWeights(const memory::desc& layout) {
  // A handle on the constant's memory, valid while spec_ holds the tensor.
  memory source = at::native::itensor_from_mkldnn(spec_.weights);
  if (source.get_desc() == layout) return std::make_shared<memory>(source);
  const auto& engine = ideep::engine::cpu_engine();
  auto& stream = ideep::stream::default_stream();
  auto packed = std::make_shared<memory>(layout, engine);
  const memory::desc plain_desc(weight_dims_, memory::data_type::f32, memory::format_tag::abcd);
  if (layout.data.format_kind == dnnl_format_kind_wino && source.get_desc() != plain_desc) {
    // oneDNN makes Winograd weights from plain ones only: unpack them for the while.
    memory plain(plain_desc, engine);
    dnnl::reorder(source, plain).execute(stream, source, plain);
    dnnl::reorder(plain, *packed).execute(stream, plain, *packed);
  } else {
    dnnl::reorder(source, *packed).execute(stream, source, *packed);
  }
  stream.wait();
  return packed;
}

const OneDnnConv::Plan& OneDnnConv::PlanFor(const memory::desc& src, bool sum, bool activation) {
  for (const Plan& plan : plans_) {
    if (plan.sum == sum && plan.activation == activation && plan.src == src) return plan;
  }
  Plan plan = MakePlan(src, sum, activation);
  plans_.push_front(std::move(plan));
  if (plans_.size() > kMaxPlans) plans_.pop_back();
  return plans_.front();
}

at::Tensor OneDnnConv::Execute(const ideep::tensor& input, const ideep::tensor* residual, bool activation,
                               const at::Tensor& like) {
  activation = activation && spec_.activation.kind != Activation::Kind::kNone;
  std::lock_guard<std::mutex> lock(mutex_);
  const Plan& plan = PlanFor(input.get_desc(), residual != nullptr, activation);
  ideep::tensor src = input.reorder_if_differ_in(plan.descriptor.src_desc());
  ideep::tensor dst(plan.descriptor.dst_desc());
  // The sum post-op adds the convolution to what dst holds: start from the residual.
  if (residual) residual->reorder_to(dst);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, *plan.weights}, {DNNL_ARG_DST, dst}};
  if (!spec_.bias.is_empty()) args.emplace(DNNL_ARG_BIAS, spec_.bias);
  std::lock_guard<std::mutex> scratch_lock(spec_.scratchpad->lock());
  args.emplace(DNNL_ARG_SCRATCHPAD, spec_.scratchpad->For(plan.descriptor.scratchpad_desc()));
  plan.primitive.execute(ideep::stream::default_stream(), args);
  return at::native::new_with_itensor_mkldnn(std::move(dst), at::kFloat, like.device());
}

at::Tensor OneDnnConv::Run(const at::Tensor& input, const c10::optional<at::Tensor>& residual) {
  TORCH_CHECK(input.is_mkldnn() && input.scalar_type() == at::kFloat && input.dim() == 4,
              "ltf::onednn_conv expects a 4-D float32 MKLDNN tensor, got ", input.toString(), " of ",
              input.dim(), " dimensions");
  // Below autograd, as LibTorch's own MKLDNN operators run (itensor_from_mkldnn asserts it).
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  // The checks LibTorch's convolution makes, with its words, before oneDNN would only say that
  // it has no kernel.
  TORCH_CHECK(input.size(1) == weight_dims_[1], "Given groups=1, weight of size ",
              c10::IntArrayRef(weight_dims_), ", expected input", input.sizes(), " to have ", weight_dims_[1],
              " channels, but got ", input.size(1), " channels instead");
  const Dims output = OutputDims(input.sizes().vec(), weight_dims_, spec_);
  TORCH_CHECK(output[2] > 0 && output[3] > 0, "Calculated output size: ", c10::IntArrayRef(output),
              ". Output size is too small (input ", input.sizes(), ", kernel ",
              c10::IntArrayRef(weight_dims_).slice(2), ")");
  return Translate([&] {
    const ideep::tensor& x = at::native::itensor_from_mkldnn(input);
    if (!residual) return Execute(x, nullptr, true, input);
    if (residual->is_mkldnn() && residual->scalar_type() == at::kFloat) {
      const ideep::tensor& r = at::native::itensor_from_mkldnn(*residual);
      if (r.get_dims() == OutputDims(x.get_dims(), weight_dims_, spec_)) return Execute(x, &r, true, input);
    }
    // A residual of another shape (broadcast) or kind: the convolution alone, then LibTorch adds.
    at::Tensor sum = at::add(Execute(x, nullptr, false, input).to_dense(),
                             residual->is_mkldnn() ? residual->to_dense() : *residual);
    ApplyActivation(spec_.activation, sum);
    return sum.to_mkldnn();
  });
}

namespace {

// This copy's operator namespace: "ltf_" and an address (common/op_namespace.h).
const std::string& OpNamespace() {
  static const std::string name = CopyNamespace("ltf_");
  return name;
}

// Registers the class and the operator once, the first time the rewrite needs them (not when the
// addon loads: a process that never optimises registers nothing).
void RegisterOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Never destroyed: graphs that call the operator may outlive static destructors.
    auto* library = new torch::Library(torch::Library::DEF, OpNamespace(), c10::nullopt, __FILE__, __LINE__);
    library->class_<OneDnnConv>("OneDnnConv");
    const std::string schema = "onednn_conv(Tensor input, __torch__.torch.classes." + OpNamespace() +
                               ".OneDnnConv conv, Tensor? residual) -> Tensor";
    library->def(schema.c_str(),
                 [](const at::Tensor& input, const c10::intrusive_ptr<OneDnnConv>& conv,
                    const c10::optional<at::Tensor>& residual) { return conv->Run(input, residual); });
  });
}

}  // namespace

c10::IValue MakeOneDnnConv(ConvSpec spec) {
  RegisterOnce();
  return c10::IValue(c10::make_intrusive<OneDnnConv>(std::move(spec)));
}

c10::Symbol OneDnnConvSymbol() {
  RegisterOnce();
  return c10::Symbol::fromQualString(OpNamespace() + "::onednn_conv");
}

}  // namespace ltf

#endif  // LTF_WITH_ONEDNN

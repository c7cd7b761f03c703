// The operator the oneDNN rewrite (onednn/onednn_conv.h) puts in the graph: one convolution, with its
// post-ops, run as a single oneDNN primitive on LibTorch's MKLDNN tensors. Only built with
// LTF_WITH_ONEDNN.
#pragma once

#ifdef LTF_WITH_ONEDNN

#include <torch/script.h>
#include <ideep.hpp>

#include <memory>
#include <mutex>
#include <vector>

// LibTorch exports these (ATen/native/mkldnn/MKLDNNCommon.h, which is not among its installed
// headers): the ideep tensor an MKLDNN tensor holds, and an MKLDNN tensor around an ideep one.
namespace at::native {
TORCH_API ideep::tensor& itensor_from_mkldnn(const at::Tensor& mkldnn_tensor);
TORCH_API at::Tensor new_with_itensor_mkldnn(ideep::tensor&& it, c10::optional<at::ScalarType> dtype,
                                             c10::optional<at::Device> device);
}  // namespace at::native

namespace ltf {

// The activation applied after the convolution (and after the residual sum, when there is one).
struct Activation {
  enum class Kind { kNone, kRelu, kClip, kSilu } kind = Kind::kNone;
  float low = 0.f, high = 0.f;  // kClip's bounds
};

// Scratch memory for the convolutions of one model, which run one at a time (runtime/forward_queue.h). oneDNN
// as Debian builds it allocates a primitive's scratch space on every run when it manages it: for
// Winograd, tens of MB mapped and unmapped per convolution (9,400 page faults and 17 ms of system
// time per ResNet-18 forward at batch 8). Held here, it is allocated once, at its largest.
class Scratchpad {
 public:
  // Memory for `desc` on this scratchpad; valid until the next call. Call with lock() held.
  dnnl::memory For(const dnnl::memory::desc& desc);
  std::mutex& lock() { return mutex_; }

 private:
  std::mutex mutex_;
  std::unique_ptr<char[]> buffer_;  // 64 bytes more than size_, for alignment
  size_t size_ = 0;
};

struct ConvSpec {
  at::Tensor weights;  // OIHW float32, an MKLDNN tensor (in whatever layout it was packed)
  ideep::tensor bias;  // empty when the convolution has none
  std::vector<int64_t> stride, padding, dilation;
  Activation activation;
  bool residual = false;                   // the operator receives a tensor to add before the activation
  bool winograd = false;                   // use Winograd where oneDNN has it for the shape
  std::shared_ptr<Scratchpad> scratchpad;  // shared by the model's convolutions
};

// The constant the rewrite puts in the graph for one convolution: an object of this copy's custom
// class OneDnnConv (onednn/onednn_op.cc), which builds and caches its oneDNN primitives per input shape.
c10::IValue MakeOneDnnConv(ConvSpec spec);

// The operator's symbol: <ns>::onednn_conv(Tensor input, <ns>.OneDnnConv conv, Tensor? residual),
// where <ns> is this copy of the addon's own namespace. LibTorch keeps one operator registry per
// process, and two copies of the addon (two versions in nested node_modules) registering one name
// aborted the process; each copy registers under a name of its own, the first time it is needed.
c10::Symbol OneDnnConvSymbol();

// Whether oneDNN runs this CPU with AVX2 or AVX-512, where the rewrite was measured to pay. With
// plain AVX, oneDNN took slower SSE4.1 kernels for the fused convolutions than for LibTorch's
// (307 ms against 142 ms per batch-8 ResNet-18 forward, under ONEDNN_MAX_CPU_ISA=AVX).
bool CpuSuitsOneDnnFusion();

}  // namespace ltf

#endif  // LTF_WITH_ONEDNN

// A TorchScript child module dressed as a torch::nn::Module, so that it can sit in a
// torch::nn::Sequential. A torch::jit::Module is not an nn::Module and cannot be converted to one;
// this wrapper forwards calls, device moves and train/eval switches to the module it holds.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

namespace ltf {

class JitChildImpl : public torch::nn::Module {
 public:
  explicit JitChildImpl(torch::jit::Module module) : module_(std::move(module)) {}

  torch::Tensor forward(torch::Tensor input) { return module_.forward({std::move(input)}).toTensor(); }

  // nn::Module::to() only moves parameters registered with nn::Module; the TorchScript module
  // keeps its own, so each overload moves those too.
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override {
    module_.to(device, dtype, non_blocking);
  }
  void to(torch::Dtype dtype, bool non_blocking = false) override { module_.to(dtype, non_blocking); }
  void to(torch::Device device, bool non_blocking = false) override { module_.to(device, non_blocking); }

  void train(bool on = true) override {
    torch::nn::Module::train(on);
    module_.train(on);
  }

  // Parameters of the TorchScript module and all its descendants (buffers such as BatchNorm's
  // running statistics are not parameters, as in torchsummary's count).
  int64_t ParameterCount() const {
    int64_t count = 0;
    for (const auto& parameter : module_.parameters(/*recurse=*/true)) count += parameter.numel();
    return count;
  }

 private:
  torch::jit::Module module_;
};

TORCH_MODULE(JitChild);

}  // namespace ltf

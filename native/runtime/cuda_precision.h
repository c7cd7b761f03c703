// Whether float32 convolutions on CUDA may use TF32 (10-bit mantissa products on the tensor cores).
#pragma once

namespace ltf {

// LibTorch keeps this switch in one process-wide flag that cuDNN reads when a convolution is
// launched, and its default lets TF32 in: float32 results then differ from the CPU's by about 1e-3
// relative. Each CUDA float32 forward holds the flag at its extractor's choice for as long as it
// runs: forwards with the same choice run together; one with the other choice waits until they
// are done, and once it waits no new forward of the first choice starts (neither side starves).
class Tf32Scope {
 public:
  explicit Tf32Scope(bool allow);
  ~Tf32Scope();
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;

 private:
  bool allow_;
};

}  // namespace ltf

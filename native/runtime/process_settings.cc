#include "runtime/process_settings.h"

#include <ATen/Context.h>

#include <mutex>

#include "runtime/onednn_caches.h"

// Exported by libtorch_cpu in 1.13 and 2.x; its header (torch/csrc/jit/codegen/fuser/interface.h)
// is not in every distribution's LibTorch (Debian's leaves it out).
namespace torch::jit {
TORCH_API void overrideCanFuseOnCPU(bool value);
}  // namespace torch::jit

namespace ltf {

void ConfigureProcess() {
  static std::once_flag once;
  std::call_once(once, [] {
    torch::jit::overrideCanFuseOnCPU(false);
    if (!OneDnnCacheState().usable) at::globalContext().setUserEnabledMkldnn(false);
  });
}

}  // namespace ltf

#include "runtime/process_settings.h"

#include <ATen/Config.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <mutex>

#include "runtime/onednn_caches.h"

// Exported by libtorch_cpu in 1.13 and 2.x; its header (torch/csrc/jit/codegen/fuser/interface.h)
// is not in every distribution's LibTorch (Debian's leaves it out).
namespace torch::jit {
TORCH_API void overrideCanFuseOnCPU(bool value);
}  // namespace torch::jit

namespace ltf {

void SerialOnThisThread() {
#if AT_PARALLEL_OPENMP
  // at::get_num_threads() first: it applies LibTorch's process default to this thread the first
  // time it is asked, which would otherwise undo the 1 later. (With LibTorch's own thread pool
  // instead of OpenMP there is one pool for the process, and nothing to do here.)
  if (at::get_num_threads() != 1) at::set_num_threads(1);
#endif
}

void ConfigureProcess() {
  static std::once_flag once;
  std::call_once(once, [] {
    torch::jit::overrideCanFuseOnCPU(false);
    if (!OneDnnCacheState().usable) at::globalContext().setUserEnabledMkldnn(false);
  });
}

}  // namespace ltf

// LibTorch settings the addon makes once per process, before any model loads.
#pragma once

namespace ltf {

// Idempotent; called by the addon's Init (every environment: the main thread and each worker).
//  - CPU fusion off for TorchScript's profiling executor: LibTorch 2.x fuses elementwise chains on
//    the CPU with NNC, and its LLVM code generation never returned here (LibTorch 2.6, Debian 13:
//    a forward stuck in TensorExprKernel::compile for minutes, on MobileNetV3 cuts; with
//    PYTORCH_TENSOREXPR=0 the same calls took 17-30 ms). CUDA fusion is left as LibTorch sets it.
//  - oneDNN off where it cannot read this CPU's cache sizes (runtime/onednn_caches.h).
void ConfigureProcess();

}  // namespace ltf

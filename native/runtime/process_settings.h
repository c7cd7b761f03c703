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

// Runs LibTorch's parallel work of the calling thread on that thread alone. For every thread but
// the forward queues' (model loading, cutting, freezing, summaries): each thread that starts an
// OpenMP parallel region keeps a team of its own for the life of the thread, and once the
// process's OpenMP threads outnumber the cores, libgomp stops letting idle workers spin between
// regions, so every small kernel of a forward waits for a worker to wake (measured on LibTorch
// 2.6, 2 cores: ResNet-18 to layer4 at batch 1, 18.8 ms per call in Python, 23.4 ms once a second
// thread had run the model too; our forwards lost 2 to 4 ms per call that way, as the thread that
// loaded a model had run it with LibTorch 2.x's default of 2 threads). Forwards set their own
// count on their own thread (runtime/forward.h).
void SerialOnThisThread();

}  // namespace ltf

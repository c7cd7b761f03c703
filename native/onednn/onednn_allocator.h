// A caching allocator for the memory of oneDNN (MKLDNN) tensors.
//
// Every optimised CPU forward allocates and frees its activations: tens of MB at batch 8, in
// blocks of a few MB. glibc serves blocks that large with mmap, or from the arena of the forward's
// own thread, which it trims after each free: either way the pages go back to the kernel and the
// next forward faults them in again (ResNet-18 at batch 8: 8,500 page faults and 13 ms of system
// time per forward, measured). PyTorch's own advice for CPU inference is to preload jemalloc or
// tcmalloc, which an addon cannot do to Node; onnxruntime keeps an arena. This keeps freed blocks
// of 256 KiB and more for the next forward, up to a bound, and hands ideep's engine to it.
#pragma once

namespace ltf {

// Installs the allocator into ideep's CPU engine, once per process (per copy of the addon); later
// calls do nothing. Called when an optimised CPU cut is first built: a process that never
// optimises keeps ideep's own allocator. Blocks ideep allocated before are freed with free(), as
// ideep frees them. A no-op in builds without the oneDNN rewrite (LTF_WITH_ONEDNN).
void InstallOneDnnAllocator();

}  // namespace ltf

// Pinned (page-locked) host staging for CUDA models: inputs are copied out of JS memory into it
// and uploaded by DMA without a wait; results are downloaded into it.
#pragma once

#include <cstddef>

namespace ltf {

// Pinned staging is used up to this size per tensor: LibTorch's caching host allocator keeps
// every pinned block for reuse, and page-locking gigabytes for one huge call would keep them
// locked for the life of the process. Batch 256 of 224x224 float32 is 154 MB.
constexpr size_t kMaxPinnedBytes = size_t{512} << 20;

}  // namespace ltf

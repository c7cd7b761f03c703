// The limits on what callers pass, shared with TypeScript: the one table is limits.json beside
// this file, which lib/limits.ts reads and CMakeLists.txt turns into the LTF_LIMIT_* definitions
// used here. TypeScript checks first, with friendly messages; native code checks again.
#pragma once

#include <cstdint>

namespace ltf::limits {

// A side of an image given as pixels (height, width).
inline constexpr int64_t kMaxImageSide = LTF_LIMIT_MAX_IMAGE_SIDE;
// A layer name, in characters: far beyond any module path, short enough to search safely.
inline constexpr int64_t kMaxLayerName = LTF_LIMIT_MAX_LAYER_NAME;
// The elements of a tensor given as input.
inline constexpr int64_t kMaxTensorElements = LTF_LIMIT_MAX_TENSOR_ELEMENTS;

}  // namespace ltf::limits

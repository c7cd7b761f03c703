// The arithmetic of a Winograd F(4x4, 3x3) convolution in float32 (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016): each 4x4 block of output ("tile") comes
// from a 6x6 block of input through 36 element-wise products instead of 144 multiply-adds per
// input/output channel pair. The products are matrix products over the channels (winograd_op.cc
// hands them to oneDNN); this file holds the three transforms around them, written as plain loops
// over channels for the compiler to vectorise, in NHWC (channels-last) memory.
#pragma once

#include <cstdint>

namespace ltf::winograd {

constexpr int kTile = 4;       // output rows and columns per tile
constexpr int kInputTile = 6;  // input rows and columns a tile reads (kTile + 3 - 1)
constexpr int kProducts = kInputTile * kInputTile;

struct Shape {
  int64_t batch = 0, height = 0, width = 0;  // input and output (stride 1, padding 1)
  int64_t in_channels = 0, out_channels = 0;
  int64_t TilesHigh() const { return (height + kTile - 1) / kTile; }
  int64_t TilesWide() const { return (width + kTile - 1) / kTile; }
  int64_t Tiles() const { return batch * TilesHigh() * TilesWide(); }
};

// weight: [out][in][3][3]; u: the `product`-th of the kProducts weight matrices, [out][in] (row
// product / 6 and column product % 6 of G g G^T for each channel pair), the layout a linear
// layer's weight has. Computed in double. One at a time: all 36 at once would be a transient of
// four times the weight.
void TransformWeights(const float* weight, int64_t out_channels, int64_t in_channels, int product, float* u);

// The tiles [first, first + count) of Shape::Tiles(), whose transformed input and products are in
// memory at once (a large input is done a chunk at a time: winograd_op.cc).
struct Chunk {
  int64_t first = 0, count = 0;
};

// x: the input, NHWC; v: kProducts matrices of [chunk.count][in] (B^T d B of each of the chunk's
// tiles). Tiles [begin, end) of the chunk only, so that callers can split the work between threads.
void TransformInput(const float* x, const Shape& shape, const Chunk& chunk, float* v, int64_t begin,
                    int64_t end);

// m: kProducts matrices of [chunk.count][out], the products; y: the output, NHWC (A^T m A of each
// tile), plus `bias` (per output channel; null for none), plus `residual` (NHWC like y; null for
// none), then max(0, .) where `relu`. Tiles [begin, end) of the chunk only.
void TransformOutput(const float* const* m, const float* bias, const float* residual, bool relu,
                     const Shape& shape, const Chunk& chunk, float* y, int64_t begin, int64_t end);

}  // namespace ltf::winograd

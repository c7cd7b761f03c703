#include "winograd/winograd_transforms.h"

#include <algorithm>
#include <cstring>

// The addon is built for the x86-64 baseline (SSE2). These loops are most of a Winograd
// convolution's own time, so on x86-64 Linux they are compiled for AVX-512 and AVX2 as well and
// the loader picks the widest the CPU has (GCC's function multi-versioning).
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define LTF_WIDEST_VECTORS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LTF_WIDEST_VECTORS
#endif

namespace ltf::winograd {

namespace {

// Channels per step: the 6x6 blocks of one step stay in the first-level cache (36 x 64 floats).
constexpr int64_t kBlock = 64;

// G (6x3), B^T (6x6) and A^T (4x6) of F(4x4, 3x3), with the interpolation points 0, +-1, +-2, inf.
constexpr double kG[6][3] = {{1.0 / 4, 0, 0},
                             {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                             {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                             {1.0 / 24, 1.0 / 12, 1.0 / 6},
                             {1.0 / 24, -1.0 / 12, 1.0 / 6},
                             {0, 0, 1}};

// B^T applied to the six values d0..d5 (a row or a column of an input tile), into out[0..5].
// Written out rather than as a matrix: most of B^T's entries are 0 or +-1.
#define LTF_INPUT_ROWS(out, d0, d1, d2, d3, d4, d5) \
  out##0 = 4 * (d0)-5 * (d2) + (d4);                \
  out##1 = -4 * (d1)-4 * (d2) + (d3) + (d4);        \
  out##2 = 4 * (d1)-4 * (d2) - (d3) + (d4);         \
  out##3 = -2 * (d1) - (d2) + 2 * (d3) + (d4);      \
  out##4 = 2 * (d1) - (d2)-2 * (d3) + (d4);         \
  out##5 = 4 * (d1)-5 * (d3) + (d5)

}  // namespace

void TransformWeights(const float* weight, int64_t out_channels, int64_t in_channels, int product, float* u) {
  const int i = product / 6, j = product % 6;
  const int64_t pairs = out_channels * in_channels;
  for (int64_t pair = 0; pair < pairs; ++pair) {
    const float* g = weight + pair * 9;
    double value = 0;
    for (int a = 0; a < 3; ++a) {
      for (int b = 0; b < 3; ++b) value += kG[i][a] * g[a * 3 + b] * kG[j][b];
    }
    u[pair] = static_cast<float>(value);
  }
}

LTF_WIDEST_VECTORS
void TransformInput(const float* x, const Shape& shape, const Chunk& chunk, float* v, int64_t begin,
                    int64_t end) {
  const int64_t c = shape.in_channels;
  const int64_t tiles_high = shape.TilesHigh(), tiles_wide = shape.TilesWide();
  alignas(64) float d[6][6][kBlock];
  alignas(64) float r[6][6][kBlock];
  for (int64_t t = begin; t < end; ++t) {
    const int64_t image = t / (tiles_high * tiles_wide);
    const int64_t top = (t / tiles_wide) % tiles_high * kTile - 1;  // padding 1
    const int64_t left = t % tiles_wide * kTile - 1;
    for (int64_t c0 = 0; c0 < c; c0 += kBlock) {
      const int64_t cc = std::min(kBlock, c - c0);
      for (int i = 0; i < 6; ++i) {
        for (int j = 0; j < 6; ++j) {
          const int64_t y = top + i, xx = left + j;
          if (y < 0 || y >= shape.height || xx < 0 || xx >= shape.width) {
            std::memset(d[i][j], 0, sizeof(float) * cc);
          } else {
            std::memcpy(d[i][j], x + ((image * shape.height + y) * shape.width + xx) * c + c0,
                        sizeof(float) * cc);
          }
        }
      }
      for (int j = 0; j < 6; ++j) {  // B^T d, down each column
        for (int64_t k = 0; k < cc; ++k) {
          LTF_INPUT_ROWS(const float o, d[0][j][k], d[1][j][k], d[2][j][k], d[3][j][k], d[4][j][k],
                         d[5][j][k]);
          r[0][j][k] = o0, r[1][j][k] = o1, r[2][j][k] = o2, r[3][j][k] = o3, r[4][j][k] = o4,
          r[5][j][k] = o5;
        }
      }
      for (int i = 0; i < 6; ++i) {  // (B^T d) B, along each row
        float* out[6];
        for (int j = 0; j < 6; ++j) out[j] = v + ((i * 6 + j) * chunk.count + t - chunk.first) * c + c0;
        for (int64_t k = 0; k < cc; ++k) {
          LTF_INPUT_ROWS(const float o, r[i][0][k], r[i][1][k], r[i][2][k], r[i][3][k], r[i][4][k],
                         r[i][5][k]);
          out[0][k] = o0, out[1][k] = o1, out[2][k] = o2, out[3][k] = o3, out[4][k] = o4, out[5][k] = o5;
        }
      }
    }
  }
}

LTF_WIDEST_VECTORS
void TransformOutput(const float* const* m, const float* bias, const float* residual, bool relu,
                     const Shape& shape, const Chunk& chunk, float* y, int64_t begin, int64_t end) {
  const int64_t k_all = shape.out_channels;
  const int64_t tiles_high = shape.TilesHigh(), tiles_wide = shape.TilesWide();
  alignas(64) float r[4][6][kBlock];
  alignas(64) float zeros[kBlock] = {};
  for (int64_t t = begin; t < end; ++t) {
    const int64_t image = t / (tiles_high * tiles_wide);
    const int64_t top = (t / tiles_wide) % tiles_high * kTile;
    const int64_t left = t % tiles_wide * kTile;
    for (int64_t c0 = 0; c0 < k_all; c0 += kBlock) {
      const int64_t cc = std::min(kBlock, k_all - c0);
      const float* b = bias ? bias + c0 : zeros;
      for (int j = 0; j < 6; ++j) {  // A^T m, down each column
        const float* p[6];
        for (int i = 0; i < 6; ++i) p[i] = m[i * 6 + j] + (t - chunk.first) * k_all + c0;
        for (int64_t k = 0; k < cc; ++k) {
          const float m0 = p[0][k], m1 = p[1][k], m2 = p[2][k], m3 = p[3][k], m4 = p[4][k], m5 = p[5][k];
          r[0][j][k] = m0 + m1 + m2 + m3 + m4;
          r[1][j][k] = m1 - m2 + 2 * m3 - 2 * m4;
          r[2][j][k] = m1 + m2 + 4 * m3 + 4 * m4;
          r[3][j][k] = m1 - m2 + 8 * m3 - 8 * m4 + m5;
        }
      }
      for (int i = 0; i < kTile && top + i < shape.height; ++i) {  // (A^T m) A, along each row
        const int64_t row = (image * shape.height + top + i) * shape.width;
        const int columns = static_cast<int>(std::min<int64_t>(kTile, shape.width - left));
        float* out[kTile];
        const float* add[kTile];
        for (int j = 0; j < kTile; ++j) {
          const int64_t offset = (row + left + std::min(j, columns - 1)) * k_all + c0;
          out[j] = y + offset;
          add[j] = residual ? residual + offset : zeros;
        }
        alignas(64) float o[kTile][kBlock];
        for (int64_t k = 0; k < cc; ++k) {
          const float m0 = r[i][0][k], m1 = r[i][1][k], m2 = r[i][2][k], m3 = r[i][3][k], m4 = r[i][4][k],
                      m5 = r[i][5][k];
          o[0][k] = m0 + m1 + m2 + m3 + m4 + b[k] + add[0][k];
          o[1][k] = m1 - m2 + 2 * m3 - 2 * m4 + b[k] + add[1][k];
          o[2][k] = m1 + m2 + 4 * m3 + 4 * m4 + b[k] + add[2][k];
          o[3][k] = m1 - m2 + 8 * m3 - 8 * m4 + m5 + b[k] + add[3][k];
        }
        // The last tile of a row may stick out of the image: only its columns inside are written.
        for (int j = 0; j < columns; ++j) {
          if (relu) {
            for (int64_t k = 0; k < cc; ++k) out[j][k] = std::max(o[j][k], 0.f);
          } else {
            std::memcpy(out[j], o[j], sizeof(float) * cc);
          }
        }
      }
    }
  }
}

}  // namespace ltf::winograd

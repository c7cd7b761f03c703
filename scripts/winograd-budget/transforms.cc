// Winograd F(4x4, 3x3) input and output transforms (with bias and ReLU), NHWC float32, vectorised
// over channels by the compiler: how long they take for ResNet-18's 3x3 stride-1 layers at batch 8.
// A measurement for BENCHMARKS.md ("LibTorch 2.6"), not part of the addon. The same buffers are
// reused each repetition, so they may sit in the last-level cache: a lower bound.
//   g++ -O3 -march=native -fopenmp -o /tmp/transforms scripts/winograd-budget/transforms.cc
//   OMP_NUM_THREADS=2 /tmp/transforms
#include <omp.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>
#include <algorithm>

static void InputTransform(const float* x, float* v, int n, int h, int w, int c, int th, int tw) {
  const long tiles = (long)n * th * tw;
#pragma omp parallel for schedule(static)
  for (long t = 0; t < tiles; ++t) {
    const int b = t / (th * tw), ty = (t / tw) % th, tx = t % tw;
    float d[6][6][64];
    for (int c0 = 0; c0 < c; c0 += 64) {
      const int cc = c - c0 < 64 ? c - c0 : 64;
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const int y = ty * 4 + i - 1, xx = tx * 4 + j - 1;
          if (y < 0 || y >= h || xx < 0 || xx >= w) {
            std::memset(d[i][j], 0, sizeof(float) * cc);
          } else {
            std::memcpy(d[i][j], x + (((long)b * h + y) * w + xx) * c + c0, sizeof(float) * cc);
          }
        }
      float r[6][6][64];
      // r = B^T d (rows), then (r) B (columns)
      for (int j = 0; j < 6; ++j)
        for (int k = 0; k < cc; ++k) {
          const float d0 = d[0][j][k], d1 = d[1][j][k], d2 = d[2][j][k], d3 = d[3][j][k], d4 = d[4][j][k], d5 = d[5][j][k];
          r[0][j][k] = 4 * d0 - 5 * d2 + d4;
          r[1][j][k] = -4 * d1 - 4 * d2 + d3 + d4;
          r[2][j][k] = 4 * d1 - 4 * d2 - d3 + d4;
          r[3][j][k] = -2 * d1 - d2 + 2 * d3 + d4;
          r[4][j][k] = 2 * d1 - d2 - 2 * d3 + d4;
          r[5][j][k] = 4 * d1 - 5 * d3 + d5;
        }
      for (int i = 0; i < 6; ++i) {
        float* out[6];
        for (int j = 0; j < 6; ++j) out[j] = v + ((long)(i * 6 + j) * tiles + t) * c + c0;
        for (int k = 0; k < cc; ++k) {
          const float d0 = r[i][0][k], d1 = r[i][1][k], d2 = r[i][2][k], d3 = r[i][3][k], d4 = r[i][4][k], d5 = r[i][5][k];
          out[0][k] = 4 * d0 - 5 * d2 + d4;
          out[1][k] = -4 * d1 - 4 * d2 + d3 + d4;
          out[2][k] = 4 * d1 - 4 * d2 - d3 + d4;
          out[3][k] = -2 * d1 - d2 + 2 * d3 + d4;
          out[4][k] = 2 * d1 - d2 - 2 * d3 + d4;
          out[5][k] = 4 * d1 - 5 * d3 + d5;
        }
      }
    }
  }
}

static void OutputTransform(const float* m, const float* bias, float* y, int n, int h, int w, int c, int th, int tw) {
  const long tiles = (long)n * th * tw;
#pragma omp parallel for schedule(static)
  for (long t = 0; t < tiles; ++t) {
    const int b = t / (th * tw), ty = (t / tw) % th, tx = t % tw;
    for (int c0 = 0; c0 < c; c0 += 64) {
      const int cc = c - c0 < 64 ? c - c0 : 64;
      float r[4][6][64];
      for (int j = 0; j < 6; ++j) {
        const float* p[6];
        for (int i = 0; i < 6; ++i) p[i] = m + ((long)(i * 6 + j) * tiles + t) * c + c0;
        for (int k = 0; k < cc; ++k) {
          const float m0 = p[0][k], m1 = p[1][k], m2 = p[2][k], m3 = p[3][k], m4 = p[4][k], m5 = p[5][k];
          r[0][j][k] = m0 + m1 + m2 + m3 + m4;
          r[1][j][k] = m1 - m2 + 2 * m3 - 2 * m4;
          r[2][j][k] = m1 + m2 + 4 * m3 + 4 * m4;
          r[3][j][k] = m1 - m2 + 8 * m3 - 8 * m4 + m5;
        }
      }
      for (int i = 0; i < 4; ++i) {
        const int yy = ty * 4 + i;
        if (yy >= h) continue;
        for (int k = 0; k < cc; ++k) {
          const float m0 = r[i][0][k], m1 = r[i][1][k], m2 = r[i][2][k], m3 = r[i][3][k], m4 = r[i][4][k], m5 = r[i][5][k];
          const float o[4] = {m0 + m1 + m2 + m3 + m4, m1 - m2 + 2 * m3 - 2 * m4, m1 + m2 + 4 * m3 + 4 * m4,
                              m1 - m2 + 8 * m3 - 8 * m4 + m5};
          for (int j = 0; j < 4; ++j) {
            const int xx = tx * 4 + j;
            if (xx >= w) continue;
            const float value = o[j] + bias[c0 + k];
            y[(((long)b * h + yy) * w + xx) * c + c0 + k] = value > 0 ? value : 0;
          }
        }
      }
    }
  }
}

int main() {
  const int n = 8;
  const int layers[4][3] = {{64, 56, 4}, {128, 28, 3}, {256, 14, 3}, {512, 7, 3}};
  double total = 0;
  for (auto& layer : layers) {
    const int c = layer[0], h = layer[1], count = layer[2], w = h, th = (h + 3) / 4, tw = th;
    const long tiles = (long)n * th * tw;
    std::vector<float> x((long)n * h * w * c, 0.5f), v(36 * tiles * c), y((long)n * h * w * c), bias(c, 0.1f);
    double best_in = 1e9, best_out = 1e9;
    std::vector<double> ins, outs;
    for (int rep = 0; rep < 15; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      InputTransform(x.data(), v.data(), n, h, w, c, th, tw);
      auto t1 = std::chrono::steady_clock::now();
      OutputTransform(v.data(), bias.data(), y.data(), n, h, w, c, th, tw);
      auto t2 = std::chrono::steady_clock::now();
      ins.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      outs.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    std::sort(ins.begin(), ins.end());
    std::sort(outs.begin(), outs.end());
    const double in = ins[7], out = outs[7];
    std::printf("C%d %dx%d: input transform %.2f ms, output transform %.2f ms (median of 15), x%d\n", c, h, w, in, out, count);
    total += (in + out) * count;
  }
  std::printf("transforms over the 13 layers: %.1f ms (threads %d)\n", total, omp_get_max_threads());
}

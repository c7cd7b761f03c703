// A cut frozen with `optimize` that checks itself against the plain cut.
//
// LibTorch's optimisations are not always right: on MobileNetV3, LibTorch 1.13's
// optimize_for_inference pads 120-channel layers to 128 (it warns that an output was resized from
// [25088] to [23520]) and the features are 0.2 to 0.4 relative off from features.7 on; Python's
// optimize_for_inference does the same. So the first time each input shape reaches the forward,
// the batch also runs through the cut frozen without any optimisation, and the two results must
// agree within the dtype's tolerance (kTolerance below). Where they do not, the cut drops to the
// next level down (conv-bn folding alone, then the plain cut), checks again, and that call returns
// the answer of the level that agreed. An input shape once checked is not checked again.
#pragma once

#include <torch/script.h>

#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "onednn/onednn_conv.h"

namespace ltf {

enum class OptimizeLevel {
  kFull,    // numerical freezing (conv-bn folding), optimize_for_inference, oneDNN rewrites
  kFolded,  // numerical freezing only
  kPlain,   // frozen, numbers untouched
};

const char* LevelName(OptimizeLevel level);

struct OptimizeSettings {
  bool onednn_fusion = false;  // the oneDNN rewrite applies (CPU, float32, build and env allow it)
  bool winograd = true;
  // LibTorch 2.x's fused operator for bfloat16 convolutions (CPU, cast_to bfloat16, the
  // operators registered, LTF_ONEDNN_FUSION not 0): graph/pointwise_fusion.h. Done at kFull on
  // the first input, whose shapes the weights are packed for.
  bool pointwise_fusion = false;
  // The same in float32, with 3x3 stride-1 convolutions on our own Winograd operator instead
  // (winograd/winograd_op.h), in place of optimize_for_inference: the folded graph runs on a
  // channels-last batch (CPU, float32, `winograd`, the operators registered, LTF_ONEDNN_FUSION not
  // 0).
  bool float32_fusion = false;
  double tolerance = 1e-3;  // largest difference allowed, relative to the largest |value|
  // Non-empty: start at kFolded, for this reason (optimize_for_inference's oneDNN graph cannot run
  // here: runtime/onednn_caches.h).
  std::string skip_full;
  // Set (CPU, a reduced precision): the cut was placed in float32 so that freezing folds in
  // float32; every level casts the frozen graph's floating-point constants to this dtype (4-D ones
  // channels-last where `channels_last`), and kFull skips optimize_for_inference (its oneDNN
  // graph is float32's).
  std::optional<torch::Dtype> cast_to;
  bool channels_last = false;
};

// What optimize does now, for the extractor's `optimization` report.
struct OptimizationReport {
  OptimizeLevel level = OptimizeLevel::kFull;
  std::vector<std::vector<int64_t>> checked_shapes;  // input shapes checked, in order
  std::string fallback;                              // why a level was dropped; empty if none
  OneDnnReport onednn;                               // the oneDNN rewrite, while at kFull
};

// The tolerance of the check for a compute dtype: float32 1e-3 (oneDNN's Winograd moves results
// by about 5e-6), float16 2e-2, bfloat16 5e-2 (their rounding, as the precision tests state).
double OptimizeTolerance(torch::Dtype dtype);

// For the tests (binding/test_hooks.h): a tolerance that replaces the dtype's; nullopt restores it.
void SetOptimizeToleranceForTests(std::optional<double> tolerance);

// Freezes `module` (in eval mode, on its device) at `level`; at kFull with the oneDNN rewrite
// where `settings` say so (its work in *onednn). Dead code is removed from the frozen graph.
torch::jit::Module FreezeAt(const torch::jit::Module& module, OptimizeLevel level,
                            const OptimizeSettings& settings, OneDnnReport* onednn);

class OptimizedGraph {
 public:
  // `unfrozen`: the cut before freezing. Builds the reference (the plain frozen cut) and the
  // fully optimised cut.
  OptimizedGraph(const torch::jit::Module& unfrozen, OptimizeSettings settings);

  // Runs `batch` and returns the graph's outputs. Called on the model's queue thread only (one
  // forward at a time); a new input shape is checked first (see above).
  std::vector<torch::Tensor> Forward(const torch::Tensor& batch);

  // Any thread.
  OptimizationReport Report() const;

 private:
  void Drop(const std::string& why);         // to the next level down
  void Checked(std::vector<int64_t> shape);  // this input shape agreed at the current level
  // `batch` as the current level wants it: channels-last for the float32 fusion at kFull.
  torch::Tensor ForCurrent(const torch::Tensor& batch) const;

  // Touched by Forward only, on the queue thread.
  torch::jit::Module reference_;
  // The plain cut in float32, where the cut computes in a reduced precision on the CPU (cast_to).
  std::optional<torch::jit::Module> reference32_;
  torch::jit::Module current_;
  OptimizeSettings settings_;
  OptimizeLevel level_ = OptimizeLevel::kFull;
  std::set<std::vector<int64_t>> checked_;
  // The bfloat16 rewrite (graph/pointwise_fusion.h) is still to be done, on the first input.
  bool pointwise_pending_ = false;

  mutable std::mutex report_mutex_;  // the report, read from the JS thread
  OptimizationReport report_;
};

}  // namespace ltf

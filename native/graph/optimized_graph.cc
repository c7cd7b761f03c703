#include "graph/optimized_graph.h"

#include <torch/csrc/jit/api/function_impl.h>

#include <cmath>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <limits>
#include <sstream>

#include "graph/graph_ops.h"
#include "graph/pointwise_fusion.h"

namespace ltf {

namespace {

std::vector<torch::Tensor> RunModule(torch::jit::Module module, const torch::Tensor& batch) {
  const c10::IValue result = module.forward({batch});  // the tuple must outlive the loop
  std::vector<torch::Tensor> outputs;
  for (const auto& value : result.toTupleRef().elements()) outputs.push_back(value.toTensor());
  return outputs;
}

std::string ShapeText(c10::IntArrayRef sizes) {
  std::ostringstream text;
  for (size_t i = 0; i < sizes.size(); ++i) text << (i ? "x" : "") << sizes[i];
  return text.str();
}

// Whether `actual` agrees with `expected`: same shape, non-finite values in the same places, and
// the largest difference at most `tolerance` times the largest |expected| (plus 1e-6, for outputs
// that are all zeros). Says why not in *why.
bool Agrees(const torch::Tensor& actual, const torch::Tensor& expected, double tolerance, std::string* why) {
  if (actual.sizes() != expected.sizes()) {
    *why = "shape " + ShapeText(actual.sizes()) + " instead of " + ShapeText(expected.sizes());
    return false;
  }
  auto a = actual.to(torch::kCPU, torch::kFloat);
  auto e = expected.to(torch::kCPU, torch::kFloat);
  const auto finite = torch::isfinite(e);
  if (!torch::equal(torch::isfinite(a), finite)) {
    *why = "NaN or infinity where the plain cut has none, or the other way round";
    return false;
  }
  a = a.masked_fill(finite.logical_not(), 0);
  e = e.masked_fill(finite.logical_not(), 0);
  const double scale = e.numel() ? e.abs().max().item<double>() : 0.0;
  const double difference = e.numel() ? (a - e).abs().max().item<double>() : 0.0;
  if (difference <= tolerance * scale + 1e-6) return true;
  std::ostringstream text;
  text << "max-abs difference " << difference << " against a largest |value| of " << scale << " ("
       << difference / std::max(scale, std::numeric_limits<double>::min()) << " relative, tolerance "
       << tolerance << ")";
  *why = text.str();
  return false;
}

// Casts the floating-point tensor constants of `block` (and the blocks inside it) that are not
// `dtype` yet to `dtype`; 4-D ones channels-last where asked. Integer constants stay.
void CastConstants(torch::jit::Block* block, torch::Dtype dtype, bool channels_last) {
  std::vector<torch::jit::Node*> constants;
  for (auto* node : block->nodes()) {
    for (auto* inner : node->blocks()) CastConstants(inner, dtype, channels_last);
    if (node->kind() == c10::prim::Constant && node->output()->type()->cast<c10::TensorType>()) {
      constants.push_back(node);
    }
  }
  auto* graph = block->owningGraph();
  for (auto* node : constants) {
    const auto value = torch::jit::toIValue(node->output());
    if (!value || !value->isTensor()) continue;
    const auto& tensor = value->toTensor();
    if (!tensor.is_floating_point() || tensor.scalar_type() == dtype) continue;
    auto cast = tensor.to(dtype);
    if (channels_last && cast.dim() == 4) cast = cast.contiguous(at::MemoryFormat::ChannelsLast);
    torch::jit::WithInsertPoint point(node);
    node->output()->replaceAllUsesWith(graph->insertConstant(cast));
    node->destroy();
  }
}

// Gives the memory glibc holds free back to the system. The rewrite frees the plain weights and
// its temporaries after glibc's allocation threshold for mmap has risen past their size (it rises
// with each large block freed), so they were heap memory, kept: ResNet-18 in float32 at batch 8
// held 758 MB after ten forwards instead of 619 (LibTorch 2.6, the same build with and without).
void ReturnFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// max|actual - expected| / max|expected|, both in float32 (0 for an all-zero expected).
double RelativeError(const torch::Tensor& actual, const torch::Tensor& expected) {
  if (actual.sizes() != expected.sizes() || expected.numel() == 0) return 0.0;
  const auto e = expected.to(torch::kCPU, torch::kFloat);
  const double scale = e.abs().max().item<double>();
  if (!std::isfinite(scale) || scale == 0.0) return 0.0;
  const double difference = (actual.to(torch::kCPU, torch::kFloat) - e).abs().max().item<double>();
  return std::isfinite(difference) ? difference / scale : 0.0;
}

}  // namespace

const char* LevelName(OptimizeLevel level) {
  switch (level) {
    case OptimizeLevel::kFull:
      return "full";
    case OptimizeLevel::kFolded:
      return "folded";
    case OptimizeLevel::kPlain:
      return "plain";
  }
  return "plain";
}

namespace {
std::mutex test_tolerance_mutex;
std::optional<double> test_tolerance;
}  // namespace

void SetOptimizeToleranceForTests(std::optional<double> tolerance) {
  std::lock_guard<std::mutex> lock(test_tolerance_mutex);
  test_tolerance = tolerance;
}

double OptimizeTolerance(torch::Dtype dtype) {
  {
    std::lock_guard<std::mutex> lock(test_tolerance_mutex);
    if (test_tolerance) return *test_tolerance;
  }
  if (dtype == torch::kHalf) return 2e-2;
  if (dtype == torch::kBFloat16) return 5e-2;
  return 1e-3;
}

torch::jit::Module FreezeAt(const torch::jit::Module& module, OptimizeLevel level,
                            const OptimizeSettings& settings, OneDnnReport* onednn) {
  // Freezing keeps only the parameters the cut reads, as constants that share the module's
  // tensors; numerical freezing folds batch norms into new ones.
  auto frozen =
      torch::jit::freeze(module, c10::nullopt, /*optimize_numerics=*/level != OptimizeLevel::kPlain);
  const bool own_fusion = level == OptimizeLevel::kFull && settings.float32_fusion;
  if (level == OptimizeLevel::kFull && !settings.cast_to && !own_fusion) {
    frozen = torch::jit::optimize_for_inference(frozen);
  }
  // Frozen, every call is inlined and the alias analysis sees through what calls hid: dead code
  // that had to stay before (a call beside an in-place operator) goes now.
  auto graph = torch::jit::toGraphFunction(frozen.get_method("forward").function()).graph();
  RemoveDeadCode(graph);
  if (settings.cast_to) CastConstants(graph->block(), *settings.cast_to, settings.channels_last);
  if (level == OptimizeLevel::kFull && settings.onednn_fusion) {
    *onednn = FuseOneDnnConvolutions(graph, settings.winograd);
  }
  return frozen;
}

OptimizedGraph::OptimizedGraph(const torch::jit::Module& unfrozen, OptimizeSettings settings)
    : settings_(settings) {
  // Freezing copies the parameters it keeps: the unfrozen module is not kept (the next level down
  // is frozen from the reference, which holds them as constants).
  reference_ = FreezeAt(unfrozen, OptimizeLevel::kPlain, settings_, nullptr);
  if (settings_.cast_to) {
    OptimizeSettings float32 = settings_;
    float32.cast_to.reset();
    reference32_ = FreezeAt(unfrozen, OptimizeLevel::kPlain, float32, nullptr);
  }
  if (settings_.skip_full.empty()) {
    current_ = FreezeAt(unfrozen, OptimizeLevel::kFull, settings_, &report_.onednn);
    // Its weights are packed for the first input's shapes (Forward).
    pointwise_pending_ = (settings_.pointwise_fusion && settings_.cast_to == torch::kBFloat16) ||
                         (settings_.float32_fusion && !settings_.cast_to);
  } else {
    level_ = report_.level = OptimizeLevel::kFolded;
    current_ = FreezeAt(reference_, OptimizeLevel::kFolded, settings_, nullptr);
    report_.fallback = "optimize_for_inference skipped: " + settings_.skip_full;
  }
}

std::vector<torch::Tensor> OptimizedGraph::Forward(const torch::Tensor& batch) {
  std::vector<int64_t> shape = batch.sizes().vec();
  if (checked_.count(shape)) return RunModule(current_, ForCurrent(batch));
  if (pointwise_pending_ && level_ == OptimizeLevel::kFull) {
    auto graph = torch::jit::toGraphFunction(current_.get_method("forward").function()).graph();
    std::optional<OneDnnReport> fused;
    try {
      fused = FusePointwiseConvolutions(graph, current_._ivalue(), batch, settings_.float32_fusion);
      // nullopt: this batch does not run (the reference below says why); the next one is used.
      pointwise_pending_ = !fused;
    } catch (const std::exception&) {
      // Whatever was rewritten before the error is checked below like the rest; not tried again.
      pointwise_pending_ = false;
    }
    if (fused) {
      std::lock_guard<std::mutex> lock(report_mutex_);
      report_.onednn = *fused;
    }
    ReturnFreedMemory();
  }

  auto expected = RunModule(reference_, batch);
  // In a reduced precision, with the float32 cut at hand: the optimised cut must be about as close
  // to float32 as the plain cut is (two bfloat16 results differ by both their roundings).
  std::vector<torch::Tensor> expected32;
  std::vector<double> tolerances(expected.size(), settings_.tolerance);
  if (reference32_) {
    expected32 = RunModule(*reference32_, batch.to(torch::kFloat));
    for (size_t i = 0; i < expected.size() && i < expected32.size(); ++i) {
      tolerances[i] = std::max(settings_.tolerance, 1.5 * RelativeError(expected[i], expected32[i]));
    }
  }
  while (level_ != OptimizeLevel::kPlain) {
    std::string why;
    try {
      auto outputs = RunModule(current_, ForCurrent(batch));
      bool agree = outputs.size() == expected.size();
      if (!agree) why = "a different number of outputs";
      for (size_t i = 0; agree && i < outputs.size(); ++i) {
        const auto& against = expected32.empty() ? expected[i] : expected32[i];
        if (!Agrees(outputs[i], against, tolerances[i], &why)) {
          agree = false;
          why = "output " + std::to_string(i) + ": " + why;
        }
      }
      if (agree) {
        Checked(std::move(shape));
        return outputs;
      }
    } catch (const std::exception& error) {
      // The plain cut ran this input: the optimised one should have, too.
      why = std::string("it failed: ") + error.what();
    }
    Drop("optimize at level '" + std::string(LevelName(level_)) + "' disagreed with the plain cut on input " +
         ShapeText(batch.sizes()) + ": " + why);
  }
  Checked(std::move(shape));
  return expected;
}

torch::Tensor OptimizedGraph::ForCurrent(const torch::Tensor& batch) const {
  // The fused convolutions keep their input's memory format, and oneDNN's channels-last kernels
  // are the fast ones: an NCHW batch would be reordered at every convolution.
  if (level_ == OptimizeLevel::kFull && settings_.float32_fusion && !settings_.cast_to && batch.dim() == 4) {
    return batch.contiguous(at::MemoryFormat::ChannelsLast);
  }
  return batch;
}

void OptimizedGraph::Checked(std::vector<int64_t> shape) {
  checked_.insert(shape);
  std::lock_guard<std::mutex> lock(report_mutex_);
  report_.checked_shapes.push_back(std::move(shape));
}

void OptimizedGraph::Drop(const std::string& why) {
  if (level_ == OptimizeLevel::kFull) {
    level_ = OptimizeLevel::kFolded;
    current_ = FreezeAt(reference_, OptimizeLevel::kFolded, settings_, nullptr);
  } else {
    level_ = OptimizeLevel::kPlain;
    current_ = reference_;
  }
  // Shapes checked at the level above are checked again at this one.
  checked_.clear();
  std::lock_guard<std::mutex> lock(report_mutex_);
  report_.level = level_;
  report_.checked_shapes.clear();
  report_.fallback = report_.fallback.empty() ? why : report_.fallback + "; " + why;
  report_.onednn = OneDnnReport();
}

OptimizationReport OptimizedGraph::Report() const {
  std::lock_guard<std::mutex> lock(report_mutex_);
  return report_;
}

}  // namespace ltf

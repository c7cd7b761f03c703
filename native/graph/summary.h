// A torchsummary-style table of a cut: every module call the cut's outputs depend on, with its
// output shape and parameters, from one forward of zeros.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

namespace ltf {

struct SummaryRow {
  std::string name;                   // "layer1.0.relu_1"
  std::string type;                   // "ReLU"
  std::vector<int64_t> output_shape;  // with the batch dimension (1)
  int64_t parameters = 0;             // the module's own parameters, not its children's
};

struct Summary {
  std::vector<SummaryRow> rows;                     // in the order their outputs are complete
  std::vector<std::vector<int64_t>> output_shapes;  // of the targets, with the batch dimension
  int64_t total_parameters = 0;                     // each counted once
};

// `root` loaded on the CPU in eval mode; `input_shape` without the batch dimension. Like
// torchsummary, containers (Sequential, ModuleList, ModuleDict) get no row.
Summary Summarize(const torch::jit::Module& root, const std::vector<std::string>& targets,
                  const std::vector<int64_t>& input_shape);

}  // namespace ltf

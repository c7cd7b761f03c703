// Where a cut's weights live: the one place that moves modules to their device and dtype, for
// both strategies (the Sequential of children and the cut graph).
#pragma once

#include <torch/script.h>

namespace ltf {

// Moves `module`'s parameters and buffers to `device`, and to `dtype` unless it is float32 (then
// the model's own dtypes stay: integer buffers such as BatchNorm's counter are not floats); with
// `channels_last`, 4-D weights are stored NHWC, the layout cuDNN and oneDNN convolutions prefer.
void Place(torch::jit::Module& module, torch::Device device, torch::Dtype dtype, bool channels_last);

}  // namespace ltf

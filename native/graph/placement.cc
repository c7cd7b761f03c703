#include "graph/placement.h"

namespace ltf {

void Place(torch::jit::Module& module, torch::Device device, torch::Dtype dtype, bool channels_last) {
  if (dtype == torch::kFloat) {
    module.to(device);
  } else {
    module.to(device, dtype);
  }
  if (channels_last) {
    for (auto parameter : module.parameters(/*recurse=*/true)) {
      if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
}

}  // namespace ltf

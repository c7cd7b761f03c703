// Reading a TorchScript forward to find which children feed a given child, and whether they form
// a plain chain (input -> a -> b -> ... -> layer) that a Sequential reproduces exactly.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

namespace ltf {

// The names of the top-level children that the forward of `module` calls, in order, from its input
// to `layer`, `layer` last. Throws NativeError(UNSUPPORTED_CUT) with the reason when the value that
// reaches `layer` is not a plain chain of child calls from the input (an operation in between, as
// ResNet's flatten before fc; a child called twice; a call inside control flow; a second input).
std::vector<std::string> ChainTo(const torch::jit::Module& module, const std::string& layer);

}  // namespace ltf

// The article's strategy, derived from the graph strategy's own resolution of calls
// (graph_expand.h): whether the children that feed a top-level child form a plain chain
// (input -> a -> b -> ... -> layer) that a Sequential of those children reproduces exactly.
#pragma once

#include <torch/script.h>

#include <optional>
#include <string>
#include <vector>

namespace ltf {

// The names of the top-level children that the forward of `module` calls, in order, from its
// input to `layer`, `layer` last; nullopt when the value that reaches `layer` is not a plain chain
// of child calls from the input (an operation in between, as ResNet's flatten before fc; a child
// called twice; a call inside control flow; a value on the way that something may modify). Then
// the graph is cut instead. Throws only what ExpandForward throws (a forward that cannot be cut).
std::optional<std::vector<std::string>> FindChain(const torch::jit::Module& module, const std::string& layer);

}  // namespace ltf

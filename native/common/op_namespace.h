// Where this copy of the addon registers its TorchScript operators and classes.
#pragma once

#include <string>

namespace ltf {

// `prefix` followed by the address this function was loaded at: a namespace unique to this copy of
// the addon. LibTorch keeps one operator registry per process, and two copies of the addon (two
// versions in nested node_modules) registering one name aborted the process.
std::string CopyNamespace(const std::string& prefix);

}  // namespace ltf

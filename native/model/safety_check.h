// Looking at a model before trusting it: why a file that will not load is not TorchScript, and
// which operations in its code reach outside the process (files), as Elastic's pytorch_inference
// checks before it runs a model. A TorchScript file is a program: treat an untrusted one as code.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "model/cut_model.h"

namespace ltf {

// What the archive is, for an error message when loading failed: a torch.save() pickle (the most
// common mistake), an empty file, not a zip archive, or a damaged TorchScript archive.
std::string WhyNotTorchScript(const ModelSource& source);

// The operations of `code` (every method and function compiled into it) that read or write
// files: "aten::from_file in __torch__.Evil.forward". Empty for torchvision's models.
std::vector<std::string> UnsafeOperations(const torch::jit::CompilationUnit& code);

// Throws NativeError(UNSAFE_MODEL) naming `found`, unless it is empty.
void RefuseUnsafe(const std::vector<std::string>& found);

// The same for the code of a loaded module.
void RefuseUnsafe(const torch::jit::Module& module);

}  // namespace ltf

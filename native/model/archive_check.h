// Reading a TorchScript archive before LibTorch loads it.
//
// torch::jit::load runs model code while it loads: each class's __setstate__, called by the
// unpickler as it rebuilds the objects, before anyone could look at the code. And LibTorch 1.13
// takes a tensor's size from the pickle, not from the record that holds its data: a record cut
// short is read past its end (the features then hold heap memory). So before the real load, the
// archive is read once our own way: the constants and data pickles are unpickled with an object
// loader that runs nothing, which compiles every class they name (its methods and __setstate__
// included) into a compilation unit of our own, and every tensor is checked against the record
// its storage comes from. The load that follows is LibTorch's own.
#pragma once

#include <string>
#include <vector>

#include "model/cut_model.h"

namespace ltf {

struct ArchiveReport {
  // Operations of the code that read or write files: "aten::save in __torch__.Trap.__setstate__".
  std::vector<std::string> unsafe_operations;
};

// Reads `source` as above. Throws NativeError(MODEL_LOAD_FAILED) for a damaged archive (a record
// shorter than the tensors the pickle builds on it, a tensor outside its storage) and for a
// pickle or code that cannot be read; returns quietly for files that are not TorchScript
// archives, which LibTorch's loader then refuses with its own message.
ArchiveReport CheckArchive(const ModelSource& source);

}  // namespace ltf

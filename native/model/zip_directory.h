// The sizes of a zip archive's records, read from its central directory alone.
//
// model/archive_check.cc must know how many bytes each tensor record holds without reading them:
// reading a model's weights once more only to count them costs time, and freeing those large
// blocks raises glibc's mmap threshold, so that the model's own allocations afterwards come from
// the heap and stay in the process's resident memory (measured: +85 MiB for ResNet-18 with
// `optimize`).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace ltf {

struct ModelSource;

// Record name -> uncompressed size, with the archive's top folder left out ("data/0" for
// "resnet18/data/0"), as PyTorchStreamReader names records. Zip64 is read. Throws NativeError
// (MODEL_LOAD_FAILED) where the directory cannot be read.
std::map<std::string, uint64_t> RecordSizes(const ModelSource& source);

}  // namespace ltf

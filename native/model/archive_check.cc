#include "model/archive_check.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/serialization/import_source.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <sstream>
#include <unordered_set>

#include "common/errors.h"
#include "model/safety_check.h"
#include "model/zip_directory.h"

namespace ltf {

namespace {

using caffe2::serialize::PyTorchStreamReader;

struct Record {
  std::string name;
  size_t size = 0;
};

class ArchiveReader {
 public:
  ArchiveReader(PyTorchStreamReader& reader, std::map<std::string, uint64_t> sizes)
      : reader_(reader),
        sizes_(std::move(sizes)),
        cu_(std::make_shared<torch::jit::CompilationUnit>()),
        importer_(
            cu_, &constants_, [this](const std::string& qualifier) { return SourceOf(qualifier); },
            reader.version()) {}

  // Unpickles `archive`.pkl, its tensors read from `archive`/ (`read_data`) or only measured:
  // their storages then have no data, only the record as context. Nothing of the model runs.
  c10::IValue Unpickle(const std::string& archive, bool read_data) {
    auto [pickle, size] = reader_.getRecord(archive + ".pkl");
    const char* data = static_cast<const char*>(pickle.get());
    size_t position = 0;
    auto read = [&](char* buffer, size_t length) -> size_t {
      const size_t n = std::min(length, size - position);
      std::memcpy(buffer, data + position, n);
      position += n;
      return n;
    };
    // Every class named is compiled from the archive's code, as LibTorch's loader does.
    auto resolve = [this](const c10::QualifiedName& name) {
      return c10::StrongTypePtr(cu_, importer_.loadType(name));
    };
    // LibTorch's loader calls the class's __setstate__ here. This builds an empty object and
    // keeps the state, whose tensors are checked below.
    auto load_object = [this](const at::StrongTypePtr& type, c10::IValue state) {
      states_.push_back(std::move(state));
      return c10::ivalue::Object::create(type, type.type_->expectRef<c10::ClassType>().numAttributes());
    };
    auto read_record = [this, archive, read_data](const std::string& key) {
      records_.push_back({archive + "/" + key, 0});
      Record* record = &records_.back();
      if (read_data) {
        auto [data, size] = reader_.getRecord(record->name);
        record->size = size;
        read_[data.get()] = record;
        return std::move(data);
      }
      const auto size = sizes_.find(record->name);
      if (size == sizes_.end()) Damaged("record '" + record->name + "' is missing");
      record->size = size->second;
      return c10::DataPtr(
          nullptr, record, [](void*) {}, c10::Device(c10::kCPU));
    };
    torch::jit::Unpickler unpickler(read, resolve, load_object, read_record, c10::nullopt);
    unpickler.set_version(reader_.version());
    return unpickler.parse_ivalue();
  }

  // The constant table the code refers to (compiling the data pickle's classes needs it).
  void ReadConstants() {
    // Read: compiling the code may compare constant tensors.
    const auto constants = Unpickle("constants", /*read_data=*/true);
    Check(constants);
    for (const auto& value : constants.toTupleRef().elements()) constants_.push_back(value);
  }

  // Every tensor reachable from `root` and from the objects' states lies within its storage, and
  // every storage within the record its data was read from.
  void Check(const c10::IValue& root) {
    std::vector<c10::IValue> pending{root};
    pending.insert(pending.end(), states_.begin(), states_.end());
    states_.clear();
    std::unordered_set<const void*> seen;
    while (!pending.empty()) {
      c10::IValue value = std::move(pending.back());
      pending.pop_back();
      if (value.isTensor()) {
        CheckTensor(value.toTensor());
      } else if (value.isTuple()) {
        for (const auto& element : value.toTupleRef().elements()) pending.push_back(element);
      } else if (value.isList()) {
        if (!seen.insert(value.internalToPointer()).second) continue;
        for (const auto& element : value.toListRef()) pending.push_back(element);
      } else if (value.isGenericDict()) {
        if (!seen.insert(value.internalToPointer()).second) continue;
        for (const auto& entry : value.toGenericDict()) {
          pending.push_back(entry.key());
          pending.push_back(entry.value());
        }
      } else if (value.isObject()) {
        if (!seen.insert(value.internalToPointer()).second) continue;
        for (const auto& slot : value.toObjectRef().slots()) pending.push_back(slot);
      }
    }
  }

  const torch::jit::CompilationUnit& Code() const { return *cu_; }

 private:
  std::shared_ptr<torch::jit::Source> SourceOf(const std::string& qualifier) {
    // code/__torch__/torchvision/models/resnet.py for __torch__.torchvision.models.resnet.
    std::string path = "code/" + qualifier;
    std::replace(path.begin() + 5, path.end(), '.', '/');
    path += ".py";
    if (!reader_.hasRecord(path)) return nullptr;
    auto [text, size] = reader_.getRecord(path);
    return std::make_shared<torch::jit::Source>(c10::string_view(static_cast<const char*>(text.get()), size),
                                                path, 1);
  }

  [[noreturn]] void Damaged(const std::string& what) const {
    throw NativeError(code::kModelLoadFailed,
                      "the model file is damaged: " + what + ". Save the model again, or copy it again");
  }

  void CheckTensor(const at::Tensor& tensor) {
    if (!tensor.defined() || !tensor.has_storage()) return;
    const auto& storage = tensor.storage();
    const size_t claimed = storage.nbytes();
    if (claimed > 0) {
      const Record* record = RecordOf(storage.data_ptr());
      if (record != nullptr && record->size < claimed) {
        Damaged("record '" + record->name + "' holds " + std::to_string(record->size) +
                " bytes where the model's pickle puts " + std::to_string(claimed));
      }
    }
    if (tensor.layout() != at::kStrided || tensor.numel() == 0) return;
    // The last element's offset, in elements, must lie inside the storage.
    int64_t last = tensor.storage_offset();
    bool negative = last < 0;
    for (int64_t d = 0; d < tensor.dim(); ++d) {
      negative = negative || tensor.stride(d) < 0;
      last += (tensor.size(d) - 1) * tensor.stride(d);
    }
    const auto item = static_cast<int64_t>(tensor.element_size());
    if (negative || last < 0 || (last + 1) > static_cast<int64_t>(claimed) / item) {
      std::ostringstream what;
      what << "a tensor of shape " << tensor.sizes() << " (offset " << tensor.storage_offset() << ", strides "
           << tensor.strides() << ") reaches past its storage of " << claimed << " bytes";
      Damaged(what.str());
    }
  }

  // The record a storage was made from: read (by its data) or measured (its context).
  const Record* RecordOf(const c10::DataPtr& data) const {
    if (data.get() == nullptr) {
      for (const auto& record : records_) {
        if (&record == data.get_context()) return &record;
      }
      return nullptr;
    }
    const auto found = read_.find(data.get());
    return found == read_.end() ? nullptr : found->second;
  }

  PyTorchStreamReader& reader_;
  std::map<std::string, uint64_t> sizes_;
  std::shared_ptr<torch::jit::CompilationUnit> cu_;
  std::vector<c10::IValue> constants_;
  torch::jit::SourceImporter importer_;
  std::vector<c10::IValue> states_;
  std::deque<Record> records_;                 // every record a storage was made from
  std::map<const void*, const Record*> read_;  // those read, by their data
};

}  // namespace

ArchiveReport CheckArchive(const ModelSource& source) {
  std::unique_ptr<PyTorchStreamReader> reader;
  std::istringstream stream;
  try {
    if (source.bytes) {
      stream.str(*source.bytes);
      reader = std::make_unique<PyTorchStreamReader>(&stream);
    } else {
      reader = std::make_unique<PyTorchStreamReader>(source.path);
    }
  } catch (const c10::Error&) {
    return {};  // not a zip archive PyTorch can read: LibTorch's loader says so
  }
  // What LibTorch's loader reads (import.cpp): without these it refuses the file itself.
  if (!reader->hasRecord("constants.pkl") || !reader->hasRecord("data.pkl")) return {};
  ArchiveReport report;
  try {
    ArchiveReader archive(*reader, RecordSizes(source));
    archive.ReadConstants();
    archive.Check(archive.Unpickle("data", /*read_data=*/false));
    report.unsafe_operations = UnsafeOperations(archive.Code());
  } catch (const NativeError&) {
    throw;
  } catch (const std::exception&) {
    throw NativeError(code::kModelLoadFailed,
                      std::string("could not read the model's archive before loading it: ") +
                          ClassifyError(std::current_exception(), code::kModelLoadFailed).message);
  }
  return report;
}

}  // namespace ltf

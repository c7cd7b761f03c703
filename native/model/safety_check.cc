#include "model/safety_check.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>

#include <fstream>
#include <set>
#include <sstream>

#include "common/errors.h"

namespace ltf {

namespace {

// Operators that touch the file system. TorchScript cannot call Python or the OS otherwise; these
// are what a crafted model can use to read or write files of the user running it.
const std::set<std::string> kUnsafeOperators = {"aten::from_file", "aten::save"};

}  // namespace

std::string WhyNotTorchScript(const ModelSource& source) {
  // A zip archive starts with "PK\x03\x04"; TorchScript files are zip archives.
  std::string head;
  if (source.bytes) {
    head = source.bytes->substr(0, 4);
  } else {
    std::ifstream file(source.path, std::ios::binary);
    head.resize(4);
    file.read(head.data(), 4);
    head.resize(static_cast<size_t>(file.gcount()));
  }
  if (head.empty()) return "it is empty";
  if (head != std::string("PK\x03\x04", 4)) {
    return "it is not a zip archive, which TorchScript files are (saved with "
           "torch.jit.script(model).save(path) or torch.jit.trace)";
  }
  try {
    std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
    std::istringstream stream;
    if (source.bytes) {
      stream.str(*source.bytes);
      reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(&stream);
    } else {
      reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(source.path);
    }
    const bool pickle = reader->hasRecord("data.pkl");
    const bool code = reader->hasRecord("constants.pkl") || reader->hasRecord("bytecode.pkl");
    if (pickle && !code) {
      return "it is a torch.save() file (a state_dict or a pickled nn.Module), not TorchScript: "
             "load it in Python and save a TorchScript version with "
             "torch.jit.script(model).save(path) (or torch.jit.trace(model, example).save(path))";
    }
  } catch (const c10::Error&) {
    // fall through: a zip that PyTorch's reader cannot read
  }
  return "it is a zip archive but not a complete TorchScript model (truncated, damaged, or "
         "another kind of zip file)";
}

std::vector<std::string> UnsafeOperations(const torch::jit::CompilationUnit& code) {
  std::vector<std::string> found;
  for (torch::jit::Function* function : code.get_functions()) {
    auto* graph_function = dynamic_cast<torch::jit::GraphFunction*>(function);
    if (graph_function == nullptr) continue;
    std::vector<torch::jit::Block*> blocks{graph_function->graph()->block()};
    while (!blocks.empty()) {
      torch::jit::Block* block = blocks.back();
      blocks.pop_back();
      for (torch::jit::Node* node : block->nodes()) {
        const std::string kind = node->kind().toQualString();
        if (kUnsafeOperators.count(kind))
          found.push_back(kind + " in " + function->qualname().qualifiedName());
        for (torch::jit::Block* inner : node->blocks()) blocks.push_back(inner);
      }
    }
  }
  return found;
}

void RefuseUnsafe(const std::vector<std::string>& found) {
  if (found.empty()) return;
  std::string list;
  for (const auto& item : found) list += (list.empty() ? "" : "; ") + item;
  throw NativeError(code::kUnsafeModel,
                    "the model's code reads or writes files (" + list +
                        "); refused, as a model from someone else may be an attack. If you trust "
                        "this model, pass { allowUnsafeOperations: true }");
}

void RefuseUnsafe(const torch::jit::Module& module) {
  RefuseUnsafe(UnsafeOperations(*module._ivalue()->compilation_unit()));
}

}  // namespace ltf

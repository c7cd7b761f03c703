#include "common/op_namespace.h"

#include <cstdint>
#include <sstream>

namespace ltf {

std::string CopyNamespace(const std::string& prefix) {
  std::ostringstream out;
  out << prefix << std::hex << reinterpret_cast<std::uintptr_t>(&CopyNamespace);
  return out.str();
}

}  // namespace ltf

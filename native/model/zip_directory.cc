#include "model/zip_directory.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <vector>

#include "common/errors.h"
#include "model/cut_model.h"

namespace ltf {

namespace {

// Reads `size` bytes at `offset` of the archive; fewer at its end.
using ReadAt = std::function<std::string(uint64_t offset, uint64_t size)>;

[[noreturn]] void Unreadable(const std::string& why) {
  throw NativeError(code::kModelLoadFailed, "the model file is damaged: its zip directory " + why);
}

uint64_t Little(const std::string& bytes, size_t at, size_t width) {
  if (at + width > bytes.size()) Unreadable("ends early");
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i)
    value |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[at + i])) << (8 * i);
  return value;
}

constexpr uint32_t kEnd = 0x06054b50;           // end of central directory
constexpr uint32_t kEnd64Locator = 0x07064b50;  // zip64 end of central directory locator
constexpr uint32_t kEnd64 = 0x06064b50;         // zip64 end of central directory
constexpr uint32_t kEntry = 0x02014b50;         // central directory file header
constexpr uint64_t kMaxEntries = 1 << 20;       // far beyond any model's records

std::map<std::string, uint64_t> ReadDirectory(uint64_t file_size, const ReadAt& read_at) {
  // The end record is the last 22 bytes, before a comment of up to 65,535.
  const uint64_t tail_size = std::min<uint64_t>(file_size, 22 + 65535 + 20);
  const std::string tail = read_at(file_size - tail_size, tail_size);
  if (tail.size() < 22) Unreadable("is missing");
  size_t end = std::string::npos;
  for (size_t at = tail.size() - 22 + 1; at-- > 0;) {
    if (Little(tail, at, 4) == kEnd) {
      end = at;
      break;
    }
  }
  if (end == std::string::npos) Unreadable("is missing");
  uint64_t entries = Little(tail, end + 10, 2);
  uint64_t directory_size = Little(tail, end + 12, 4);
  uint64_t directory_offset = Little(tail, end + 16, 4);
  if (entries == 0xFFFF || directory_size == 0xFFFFFFFF || directory_offset == 0xFFFFFFFF) {
    if (end < 20 || Little(tail, end - 20, 4) != kEnd64Locator) Unreadable("has no zip64 locator");
    const uint64_t end64_offset = Little(tail, end - 20 + 8, 8);
    const std::string end64 = read_at(end64_offset, 56);
    if (Little(end64, 0, 4) != kEnd64) Unreadable("has no zip64 end record");
    entries = Little(end64, 32, 8);
    directory_size = Little(end64, 40, 8);
    directory_offset = Little(end64, 48, 8);
  }
  if (entries > kMaxEntries || directory_offset > file_size ||
      directory_size > file_size - directory_offset) {
    Unreadable("is out of bounds");
  }
  const std::string directory = read_at(directory_offset, directory_size);
  std::map<std::string, uint64_t> sizes;
  size_t at = 0;
  for (uint64_t i = 0; i < entries; ++i) {
    if (Little(directory, at, 4) != kEntry) Unreadable("has a bad entry");
    uint64_t size = Little(directory, at + 24, 4);
    const size_t name_length = Little(directory, at + 28, 2);
    const size_t extra_length = Little(directory, at + 30, 2);
    const size_t comment_length = Little(directory, at + 32, 2);
    if (at + 46 + name_length + extra_length > directory.size()) Unreadable("ends early");
    std::string name = directory.substr(at + 46, name_length);
    if (size == 0xFFFFFFFF) {
      // Zip64 extended information: the 8-byte sizes that overflowed, uncompressed first.
      size_t extra = at + 46 + name_length;
      const size_t extra_end = extra + extra_length;
      bool found = false;
      while (extra + 4 <= extra_end) {
        const uint64_t id = Little(directory, extra, 2);
        const uint64_t length = Little(directory, extra + 2, 2);
        if (id == 1) {
          size = Little(directory, extra + 4, 8);
          found = true;
          break;
        }
        extra += 4 + length;
      }
      if (!found) Unreadable("gives no size for '" + name + "'");
    }
    // PyTorchStreamReader names records without the archive's top folder.
    const size_t slash = name.find('/');
    sizes[slash == std::string::npos ? name : name.substr(slash + 1)] = size;
    at += 46 + name_length + extra_length + comment_length;
  }
  return sizes;
}

}  // namespace

std::map<std::string, uint64_t> RecordSizes(const ModelSource& source) {
  if (source.bytes) {
    const std::string& bytes = *source.bytes;
    return ReadDirectory(bytes.size(), [&](uint64_t offset, uint64_t size) {
      if (offset > bytes.size()) return std::string();
      return bytes.substr(offset, size);
    });
  }
  std::ifstream file(source.path, std::ios::binary);
  file.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(file.tellg());
  if (!file) Unreadable("cannot be read");
  return ReadDirectory(file_size, [&](uint64_t offset, uint64_t size) {
    std::string bytes(std::min(size, file_size - std::min(offset, file_size)), '\0');
    file.clear();
    file.seekg(static_cast<std::streamoff>(offset));
    file.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes.resize(static_cast<size_t>(file.gcount()));
    return bytes;
  });
}

}  // namespace ltf

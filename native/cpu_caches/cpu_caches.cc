// cpu_caches.so: gives oneDNN this CPU's per-core cache sizes where CPUID hides them.
//
// Preloaded (LD_PRELOAD=.../cpu_caches.so node app.js), this definition comes before oneDNN's own
// in every lookup, so oneDNN's calls reach it: where LibTorch uses a shared libdnnl (Debian,
// conda), oneDNN then blocks with real sizes and the addon leaves it on (runtime/onednn_caches.h).
// It cannot reach a oneDNN linked inside libtorch_cpu with hidden symbols (official archives).
//
// The sizes come from Linux's /sys/devices/system/cpu/cpu0/cache (filled from firmware tables
// where CPUID has nothing), each divided by the CPUs that share it; where that is empty too,
// oneDNN 2's own fallback: 32 KiB, 512 KiB, 1 MiB per core.
#include <cstdio>
#include <cstring>
#include <string>

namespace {

// A sysfs cache entry's value, or "" if absent.
std::string ReadEntry(int index, const char* name) {
  const std::string path = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/" + name;
  FILE* file = std::fopen(path.c_str(), "r");
  if (!file) return "";
  char text[256] = {0};
  const bool read = std::fgets(text, sizeof text, file) != nullptr;
  std::fclose(file);
  if (!read) return "";
  std::string value(text);
  while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
  return value;
}

// How many CPUs a shared_cpu_list such as "0-3,8-11" names.
unsigned CountCpus(const std::string& list) {
  unsigned count = 0;
  size_t at = 0;
  while (at < list.size()) {
    size_t end = list.find(',', at);
    if (end == std::string::npos) end = list.size();
    const std::string range = list.substr(at, end - at);
    unsigned first = 0, last = 0;
    if (std::sscanf(range.c_str(), "%u-%u", &first, &last) == 2 && last >= first) {
      count += last - first + 1;
    } else if (std::sscanf(range.c_str(), "%u", &first) == 1) {
      count += 1;
    }
    at = end + 1;
  }
  return count;
}

unsigned SysfsPerCoreSize(int level) {
  for (int index = 0; index < 16; ++index) {
    const std::string type = ReadEntry(index, "type");
    if (type.empty()) break;
    if (type == "Instruction" || ReadEntry(index, "level") != std::to_string(level)) continue;
    unsigned kib = 0;
    if (std::sscanf(ReadEntry(index, "size").c_str(), "%uK", &kib) != 1 || kib == 0) return 0;
    const unsigned sharing = CountCpus(ReadEntry(index, "shared_cpu_list"));
    return kib * 1024u / (sharing ? sharing : 1u);
  }
  return 0;
}

unsigned PerCoreSize(int level) {
  if (level < 1 || level > 3) return 0;
  if (unsigned size = SysfsPerCoreSize(level)) return size;
  static const unsigned kFallback[] = {32u * 1024, 512u * 1024, 1024u * 1024};
  return kFallback[level - 1];
}

}  // namespace

namespace dnnl::impl::cpu::platform {

__attribute__((visibility("default"))) unsigned get_per_core_cache_size(int level) {
  static const unsigned sizes[] = {PerCoreSize(1), PerCoreSize(2), PerCoreSize(3)};
  return level >= 1 && level <= 3 ? sizes[level - 1] : 0;
}

}  // namespace dnnl::impl::cpu::platform

#include "runtime/onednn_caches.h"

#include <ATen/Context.h>
#include <dlfcn.h>
#include <torch/version.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace ltf {

namespace {

// dnnl::impl::cpu::platform::get_per_core_cache_size(int), mangled.
constexpr const char* kOneDnnCacheSize = "_ZN4dnnl4impl3cpu8platform23get_per_core_cache_sizeEi";

std::vector<uint32_t> HardwareCpuid(uint32_t leaf, uint32_t subleaf) {
  std::vector<uint32_t> registers(4, 0);
#if defined(__x86_64__) || defined(__i386__)
  __cpuid_count(leaf, subleaf, registers[0], registers[1], registers[2], registers[3]);
#else
  (void)leaf;
  (void)subleaf;
#endif
  return registers;
}

std::string HardwareVendor() {
  const auto r = HardwareCpuid(0, 0);
  char vendor[13] = {0};
  for (int i = 0; i < 4; ++i) {
    vendor[i] = static_cast<char>(r[1] >> (8 * i));      // ebx
    vendor[4 + i] = static_cast<char>(r[3] >> (8 * i));  // edx
    vendor[8 + i] = static_cast<char>(r[2] >> (8 * i));  // ecx
  }
  return vendor;
}

// Per-level sizes, L1 first, cut at the first level with none: a level missing (CPUID skipped it,
// or reports 0) hides the ones above from oneDNN too.
std::vector<uint64_t> UpToFirstGap(std::vector<uint64_t> sizes) {
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0) {
      sizes.resize(i);
      break;
    }
  }
  return sizes;
}

// Leaf 4 and 0x8000001D share their layout: type in eax[4:0] (0: no more, 2: instruction),
// level in eax[7:5], sharing threads - 1 in eax[25:14], ways/partitions/line size - 1 in ebx,
// sets - 1 in ecx.
std::vector<uint64_t> DeterministicCacheSizes(uint32_t leaf, const CpuidFunction& cpuid) {
  std::vector<uint64_t> sizes;
  for (uint32_t index = 0; index < 16; ++index) {
    const auto r = cpuid(leaf, index);
    const uint32_t type = r[0] & 0x1f;
    if (type == 0) break;
    if (type == 2) continue;
    const uint32_t level = (r[0] >> 5) & 0x7;
    const uint64_t sharing = ((r[0] >> 14) & 0xfff) + 1;
    const uint64_t bytes = static_cast<uint64_t>((r[1] >> 22) + 1) * (((r[1] >> 12) & 0x3ff) + 1) *
                           ((r[1] & 0xfff) + 1) * (static_cast<uint64_t>(r[2]) + 1);
    if (level == 0 || bytes == 0) continue;
    if (sizes.size() < level) sizes.resize(level, 0);
    sizes[level - 1] = bytes / sharing;
  }
  return UpToFirstGap(std::move(sizes));
}

OneDnnCaches Probe() {
  OneDnnCaches state;
  // As oneDNN's own calls resolve it: the global scope first (a preloaded library), then the
  // libraries this addon brought in. Not found: oneDNN is inside libtorch_cpu with its symbols
  // hidden, or absent.
  using CacheSizeFunction = unsigned (*)(int);
  auto* onednn = reinterpret_cast<CacheSizeFunction>(dlsym(RTLD_DEFAULT, kOneDnnCacheSize));
  if (onednn) {
    state.source = "onednn";
    for (int level = 1; level <= 3; ++level) state.sizes.push_back(onednn(level));
    state.sizes = UpToFirstGap(std::move(state.sizes));
  } else {
    state.source = "cpuid";
#if defined(__x86_64__) || defined(__i386__)
    state.sizes = CpuidDataCacheSizes(HardwareVendor(), HardwareCpuid);
#else
    return state;  // oneDNN reads other CPUs' caches otherwise
#endif
  }
  // oneDNN 2 (LibTorch 1.x) uses fixed sizes where CPUID has none; oneDNN 3 does not.
  const bool affected = onednn || TORCH_VERSION_MAJOR >= 2;
  if (affected && at::hasMKLDNN() && !CacheSizesUsable(state.sizes)) {
    state.usable = false;
    std::string sizes;
    for (auto size : state.sizes) sizes += (sizes.empty() ? "" : ", ") + std::to_string(size);
    state.reason =
        (state.source == "onednn" ? "oneDNN takes this CPU's per-core caches as [" + sizes + "] bytes"
                                  : std::string("this CPU's CPUID reports no cache sizes")) +
        " (a VM that hides them): oneDNN would divide by zero or compute wrong convolutions";
  }
  return state;
}

}  // namespace

std::vector<uint64_t> CpuidDataCacheSizes(const std::string& vendor, const CpuidFunction& cpuid) {
  if (vendor == "AuthenticAMD" || vendor == "HygonGenuine") {
    const uint32_t max_extended = cpuid(0x80000000, 0)[0];
    const bool topoext = max_extended >= 0x80000001 && ((cpuid(0x80000001, 0)[2] >> 22) & 1);
    if (topoext && max_extended >= 0x8000001D) return DeterministicCacheSizes(0x8000001D, cpuid);
    // Older AMD: L1d size in KiB in ecx[31:24] of 0x80000005, L2 in ecx[31:16] of 0x80000006.
    std::vector<uint64_t> sizes;
    if (max_extended >= 0x80000005)
      sizes.push_back(static_cast<uint64_t>(cpuid(0x80000005, 0)[2] >> 24) * 1024);
    if (max_extended >= 0x80000006)
      sizes.push_back(static_cast<uint64_t>(cpuid(0x80000006, 0)[2] >> 16) * 1024);
    return UpToFirstGap(std::move(sizes));
  }
  // Intel and the others that follow it: leaf 4.
  if (cpuid(0, 0)[0] < 4) return {};
  return DeterministicCacheSizes(4, cpuid);
}

bool CacheSizesUsable(const std::vector<uint64_t>& sizes) {
  return sizes.size() >= 2 && sizes[0] >= 1024 && sizes[1] >= 1024;
}

const OneDnnCaches& OneDnnCacheState() {
  static const OneDnnCaches state = Probe();
  return state;
}

}  // namespace ltf

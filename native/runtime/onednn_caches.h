// Whether oneDNN knows this CPU's cache sizes, and what the addon does when it does not.
//
// oneDNN 3 (LibTorch 2.x) sizes its blocking from the per-core cache sizes it reads with CPUID.
// Some cloud and Firecracker VMs report none, and oneDNN 3.6/3.7 then takes every cache as 1 byte:
// an integer division by zero (SIGFPE) in its sum kernel (at::native::mkldnn_add_out, which
// optimize_for_inference graphs reach) and channels-last float32 convolutions 0.14-0.28 relative
// off (Python's PyTorch 2.6 does the same on such a VM). oneDNN 2 (LibTorch 1.13) falls back to
// fixed sizes instead and is not affected.
//
// So before any model loads, the addon asks oneDNN the sizes it uses (its exported
// dnnl::impl::cpu::platform::get_per_core_cache_size, as its own calls resolve it), or, where
// LibTorch carries its own oneDNN with that symbol hidden (official archives), reads CPUID itself.
// Where the sizes are unusable, oneDNN is switched off for the process (LibTorch's own kernels run
// the convolutions, correct and slower) and `optimize` skips optimize_for_inference. The library
// native/cpu_caches/cpu_caches.cc, preloaded, gives oneDNN real sizes and the fast paths back.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ltf {

struct OneDnnCaches {
  // Per-core data cache sizes in bytes, L1 first, as oneDNN sees them ('onednn') or as CPUID
  // reports them ('cpuid'); empty when CPUID reports none.
  std::vector<uint64_t> sizes;
  std::string source;  // 'onednn' or 'cpuid'
  bool usable = true;  // false: oneDNN is off for this process
  std::string reason;  // why not usable; empty if usable
};

// Probed once, the first time it is asked (ConfigureProcess asks before any model loads).
const OneDnnCaches& OneDnnCacheState();

// The registers CPUID returns for (leaf, subleaf): eax, ebx, ecx, edx.
using CpuidFunction = std::function<std::vector<uint32_t>(uint32_t leaf, uint32_t subleaf)>;

// The per-core data (and unified) cache sizes CPUID describes, L1 first: deterministic cache
// parameters (leaf 4 on Intel, 0x8000001D on AMD with TOPOEXT), each divided by the logical
// processors sharing it; AMD without TOPOEXT, leaves 0x80000005/6 (L1d, L2). Empty if none.
// Pure, for the tests (binding/test_hooks.h): `cpuid` may replay recorded registers.
std::vector<uint64_t> CpuidDataCacheSizes(const std::string& vendor, const CpuidFunction& cpuid);

// Whether per-core sizes are ones oneDNN can block with (L1 and L2 at least 1 KiB).
bool CacheSizesUsable(const std::vector<uint64_t>& sizes);

}  // namespace ltf

// For the tests only (test/cpu-caches.test.ts): hidden_caches.so, preloaded, makes oneDNN take
// every cache as 1 byte, as oneDNN 3.6/3.7 do on a VM whose CPUID reports no cache sizes: the same
// SIGFPE in its sum kernel and the same wrong channels-last convolutions (checked with PyTorch 2.6
// in Python). It lets a machine with honest CPUID test the addon's side of such a VM.
namespace dnnl::impl::cpu::platform {

__attribute__((visibility("default"))) unsigned get_per_core_cache_size(int level) {
  return level >= 1 && level <= 3 ? 1u : 0u;
}

}  // namespace dnnl::impl::cpu::platform

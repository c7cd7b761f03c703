#include "onednn/onednn_allocator.h"

#ifdef LTF_WITH_ONEDNN

#include <ideep.hpp>

#include <algorithm>
#include <cstdlib>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

namespace ltf {

namespace {

class CachingAllocator {
 public:
  void* Allocate(size_t size) {
    if (size < kMinCached) return Raw(size);
    const size_t rounded = (size + kPage - 1) / kPage * kPage;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The smallest cached block that fits, if it wastes at most a quarter of itself.
      auto block = by_size_.lower_bound(rounded);
      if (block != by_size_.end() && block->first - rounded <= block->first / 4) {
        void* p = block->second->pointer;
        const size_t held = block->first;
        cached_bytes_ -= held;
        recent_.erase(block->second);
        by_size_.erase(block);
        Lend(p, held);
        return p;
      }
    }
    void* p = Raw(rounded);
    if (p) {
      std::lock_guard<std::mutex> lock(mutex_);
      Lend(p, rounded);
    }
    return p;
  }

  void Free(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto lent = lent_.find(p);
    if (lent == lent_.end()) {  // a small block: never cached
      std::free(p);
      return;
    }
    const size_t size = lent->second;
    lent_.erase(lent);
    lent_bytes_ -= size;
    recent_.push_front({p, size});
    by_size_.emplace(size, recent_.begin());
    cached_bytes_ += size;
    // Keep at most what was in use at the busiest moment (one forward's working set: glibc held
    // as much during it), and never past the hard bound. The least recently freed go first: a
    // new input shape's blocks replace the old shape's.
    const size_t bound = std::min(kMaxCachedBytes, peak_lent_bytes_);
    while (cached_bytes_ > bound) {
      const Block& oldest = recent_.back();
      for (auto entry = by_size_.lower_bound(oldest.size); entry != by_size_.end(); ++entry) {
        if (entry->second == std::prev(recent_.end())) {
          by_size_.erase(entry);
          break;
        }
      }
      cached_bytes_ -= oldest.size;
      std::free(oldest.pointer);
      recent_.pop_back();
    }
  }

 private:
  struct Block {
    void* pointer;
    size_t size;
  };

  static constexpr size_t kPage = 4096;  // ideep's alignment for tensors
  static constexpr size_t kMinCached = 256 << 10;
  static constexpr size_t kMaxCachedBytes = size_t{256} << 20;

  static void* Raw(size_t size) { return ideep::utils::allocator::malloc(size); }

  void Lend(void* p, size_t size) {
    lent_[p] = size;
    lent_bytes_ += size;
    peak_lent_bytes_ = std::max(peak_lent_bytes_, lent_bytes_);
  }

  std::mutex mutex_;
  std::unordered_map<void*, size_t> lent_;  // the cacheable blocks in use, and their sizes
  size_t lent_bytes_ = 0;
  size_t peak_lent_bytes_ = 0;
  std::list<Block> recent_;                                    // cached blocks, last freed first
  std::multimap<size_t, std::list<Block>::iterator> by_size_;  // the same, by size
  size_t cached_bytes_ = 0;
};

}  // namespace

void InstallOneDnnAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Never destroyed: tensors may be freed while the process exits, after static destructors.
    static auto* allocator = new CachingAllocator();
    ideep::engine::cpu_engine().set_allocator([](size_t size) { return allocator->Allocate(size); },
                                              [](void* p) { allocator->Free(p); });
  });
}

}  // namespace ltf

#else  // LTF_WITH_ONEDNN

namespace ltf {

void InstallOneDnnAllocator() {}

}  // namespace ltf

#endif  // LTF_WITH_ONEDNN

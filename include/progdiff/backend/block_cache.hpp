#pragma once
// A size-bucketed cache of memory blocks, shared by the back ends: a training step frees and
// takes the same sizes every step, so blocks are kept and handed out again instead of going
// back to the system (page faults on the host, synchronizing cudaMalloc/cudaFree on a GPU).
//
// `Source` supplies the memory: static void* allocate(std::size_t bytes) (throws on failure)
// and static void release(void*). `Granule` is the size every block is rounded up to; at most
// `MaxCachedBytes` are kept, beyond that a freed block goes back to its source.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace progdiff::backend {

/// Bytes of the blocks handed out and not yet given back (block sizes, i.e. after rounding),
/// and the most there have been since the last reset_peak().
struct BlockCacheStats {
  std::size_t live_bytes = 0;
  std::size_t peak_live_bytes = 0;
  std::size_t cached_bytes = 0;  // freed blocks kept for reuse
};

template <class Source, std::size_t Granule, std::size_t MaxCachedBytes>
class BlockCache {
  static_assert(Granule > 0 && (Granule & (Granule - 1)) == 0, "progdiff: the block granule must be a power of two");

 public:
  static BlockCache& instance() {
    static BlockCache cache;
    return cache;
  }

  void* take(std::size_t bytes) {
    const std::size_t size = bucket(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= size;
        count_taken(size);
        return p;
      }
    }
    void* p = Source::allocate(size);
    std::lock_guard<std::mutex> lock(mutex_);
    count_taken(size);
    return p;
  }

  void give(void* p, std::size_t bytes) {
    if (!p) return;
    const std::size_t size = bucket(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    live_bytes_ -= size;
    if (cached_bytes_ + size > MaxCachedBytes) {
      Source::release(p);
      return;
    }
    free_[size].push_back(p);
    cached_bytes_ += size;
  }

  /// Returns every cached block to its source.
  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) Source::release(p);
    free_.clear();
    cached_bytes_ = 0;
  }

  ~BlockCache() { release_all(); }

  BlockCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {live_bytes_, peak_live_bytes_, cached_bytes_};
  }
  /// Starts a new peak from the bytes live now.
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_live_bytes_ = live_bytes_;
  }

  /// The block size a request of `bytes` gets: a multiple of the granule, then of a quarter of
  /// the next lower power of two, so reuse is likely while the waste stays under 25%.
  static std::size_t bucket(std::size_t bytes) {
    const std::size_t size = (bytes + Granule - 1) & ~(Granule - 1);
    if (size <= 4096) return size == 0 ? Granule : size;
    const std::size_t top = std::size_t(1) << (63 - __builtin_clzll(size));
    const std::size_t step = top / 4;
    return (size + step - 1) / step * step;
  }

 private:
  void count_taken(std::size_t size) {
    live_bytes_ += size;
    if (live_bytes_ > peak_live_bytes_) peak_live_bytes_ = live_bytes_;
  }

  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_bytes_ = 0;
  std::size_t live_bytes_ = 0, peak_live_bytes_ = 0;
};

}  // namespace progdiff::backend

#pragma once
// Host memory for the CPU back end: 64-byte aligned blocks kept in a size-bucketed cache,
// so a training step reuses its buffers instead of faulting fresh pages in every step.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace progdiff::backend::cpu {

class BlockCache {
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
        return p;
      }
    }
    void* p = std::aligned_alloc(64, size);
    if (!p) throw std::bad_alloc();
    return p;
  }

  void give(void* p, std::size_t bytes) {
    if (!p) return;
    const std::size_t size = bucket(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_bytes_ + size > kMaxCachedBytes) {
      std::free(p);
      return;
    }
    free_[size].push_back(p);
    cached_bytes_ += size;
  }

  /// Returns every cached block to the system.
  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
  }

  ~BlockCache() { release_all(); }

 private:
  static constexpr std::size_t kMaxCachedBytes = std::size_t(4) << 30;

  // Sizes round up to 64 bytes, then to a quarter-power-of-two step, so reuse is likely
  // while the waste stays under 25%.
  static std::size_t bucket(std::size_t bytes) {
    std::size_t size = (bytes + 63) & ~std::size_t(63);
    if (size <= 4096) return size == 0 ? 64 : size;
    std::size_t top = std::size_t(1) << (63 - __builtin_clzll(size));
    std::size_t step = top / 4;
    return (size + step - 1) / step * step;
  }

  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_bytes_ = 0;
};

struct Memory {
  template <class T>
  static T* allocate(std::size_t n) {
    return static_cast<T*>(BlockCache::instance().take(n * sizeof(T)));
  }
  template <class T>
  static void deallocate(T* p, std::size_t n) {
    BlockCache::instance().give(p, n * sizeof(T));
  }
  template <class T>
  static void copy_from_host(T* dst, const T* src, std::size_t n) {
    if (n) std::memcpy(dst, src, n * sizeof(T));
  }
  template <class T>
  static void copy_to_host(T* dst, const T* src, std::size_t n) {
    if (n) std::memcpy(dst, src, n * sizeof(T));
  }
  template <class T>
  static void copy(T* dst, const T* src, std::size_t n) {
    if (n) std::memcpy(dst, src, n * sizeof(T));
  }
  template <class T>
  static void fill(T* p, std::size_t n, T value) {
    for (std::size_t i = 0; i < n; ++i) p[i] = value;
  }
  /// dst[r, :cols] = src[r, :cols] for `rows` rows with leading dimensions lds, ldd.
  template <class T>
  static void copy_2d(std::int64_t rows, std::int64_t cols, const T* src, std::int64_t lds, T* dst, std::int64_t ldd) {
    for (std::int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * ldd, src + r * lds, cols * sizeof(T));
  }
  /// dst[r, :cols] += src[r, :cols].
  template <class T>
  static void add_2d(std::int64_t rows, std::int64_t cols, const T* src, std::int64_t lds, T* dst, std::int64_t ldd) {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) dst[r * ldd + c] += src[r * lds + c];
  }
  static void synchronize() {}
};

}  // namespace progdiff::backend::cpu

#pragma once
// Host memory for the CPU back end: 64-byte aligned blocks kept in a size-bucketed cache,
// so a training step reuses its buffers instead of faulting fresh pages in every step.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "progdiff/backend/block_cache.hpp"

namespace progdiff::backend::cpu {

/// 64-byte aligned host blocks (one cache line, one AVX-512 vector).
struct AlignedHostMemory {
  static void* allocate(std::size_t bytes) {
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  static void release(void* p) { std::free(p); }
};

// Up to 4 GiB of freed host blocks are kept for reuse.
using BlockCache = backend::BlockCache<AlignedHostMemory, 64, std::size_t(4) << 30>;

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

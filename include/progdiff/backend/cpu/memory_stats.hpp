#pragma once
// Tensor memory of the CPU back end, as torch.cuda.memory_allocated / max_memory_allocated /
// reset_peak_memory_stats report it for a GPU: bytes of the blocks that tensors hold now, and
// the most they have held since the last reset. Counts block sizes (a request rounded up to its
// cache bucket), not the freed blocks the cache keeps for reuse nor kernels' private scratch.
#include <cstddef>

#include "progdiff/backend/cpu/memory.hpp"

namespace progdiff::backend::cpu {

struct MemoryStats {
  std::size_t live_bytes = 0;    // held by tensors now
  std::size_t peak_bytes = 0;    // the most held at once since reset_peak_memory()
  std::size_t cached_bytes = 0;  // freed, kept by the cache for reuse
};

inline MemoryStats memory_stats() {
  const BlockCacheStats s = BlockCache::instance().stats();
  return {s.live_bytes, s.peak_live_bytes, s.cached_bytes};
}

/// Starts a new peak from the bytes held now.
inline void reset_peak_memory() { BlockCache::instance().reset_peak(); }

/// The bytes a tensor of `elements` (> 0) values of type T holds: its block, rounded up.
template <class T>
std::size_t block_bytes(std::size_t elements) {
  return BlockCache::bucket(elements * sizeof(T));
}

}  // namespace progdiff::backend::cpu

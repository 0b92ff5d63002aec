#include <doctest/doctest.h>

#include <cstdlib>

#include "progdiff/backend/block_cache.hpp"

namespace progdiff_tests_block_cache {

namespace {

struct CountingSource {
  static inline int allocations = 0, releases = 0;
  static void* allocate(std::size_t bytes) {
    ++allocations;
    return std::malloc(bytes);
  }
  static void release(void* p) {
    ++releases;
    std::free(p);
  }
};

// A cache that keeps at most 8 KiB.
using Cache = progdiff::backend::BlockCache<CountingSource, 64, 8192>;

}  // namespace

TEST_CASE("block sizes round to the granule, then to a quarter of the power of two below") {
  CHECK(Cache::bucket(0) == 64);
  CHECK(Cache::bucket(1) == 64);
  CHECK(Cache::bucket(65) == 128);
  CHECK(Cache::bucket(4096) == 4096);
  CHECK(Cache::bucket(4097) == 5120);               // 4096 + 1024
  CHECK(Cache::bucket(5121) == 6144);               // next quarter step
  CHECK(Cache::bucket((1u << 20) + 1) == 1310720);  // 1 MiB + 256 KiB
  for (std::size_t bytes = 1; bytes < 100000; bytes += 997) {
    const std::size_t b = Cache::bucket(bytes);
    CHECK(b >= bytes);
    CHECK(b % 64 == 0);
    CHECK(b <= bytes + bytes / 4 + 64);  // waste under 25% (plus the granule)
  }
}

TEST_CASE("a freed block is handed out again, and the cache keeps no more than its limit") {
  Cache cache;
  CountingSource::allocations = CountingSource::releases = 0;
  void* a = cache.take(1000);
  cache.give(a, 1000);
  void* b = cache.take(1000);  // same bucket: the cached block, no new allocation
  CHECK(b == a);
  CHECK(CountingSource::allocations == 1);
  void* big1 = cache.take(6000);
  void* big2 = cache.take(6000);
  CHECK(CountingSource::allocations == 3);
  cache.give(big1, 6000);  // 6144 cached
  cache.give(big2, 6000);  // would exceed 8192: released at once
  CHECK(CountingSource::releases == 1);
  cache.give(b, 1000);  // 6144 + 1024 fits
  cache.release_all();
  CHECK(CountingSource::releases == 3);
}

}  // namespace progdiff_tests_block_cache

#pragma once
// A host-side Philox stream: (seed, stream) fixed, a counter that advances per draw.
// Its state is three integers, so checkpoints store it and a resumed run continues exactly.
#include <cstdint>
#include <vector>

#include "progdiff/backend/math/philox.hpp"

namespace progdiff {

class Generator {
 public:
  Generator(std::uint64_t seed = 0, std::uint64_t stream = 0, std::uint64_t offset = 0)
      : seed_(seed), stream_(stream), offset_(offset) {}

  /// Uniform in (0, 1].
  float uniform() { return math::philox_uniform(seed_, stream_, offset_++); }
  /// Uniform in [low, high).
  double uniform(double low, double high) { return high - (high - low) * static_cast<double>(uniform()); }
  template <class T = float>
  T normal() {
    return math::philox_normal<T>(seed_, stream_, offset_++);
  }
  /// An integer in [0, n).
  std::uint64_t below(std::uint64_t n) {
    const auto r = math::philox_block(seed_, stream_ ^ 0x5bd1e995u, offset_++);
    const std::uint64_t bits = (static_cast<std::uint64_t>(r.v[0]) << 32) | r.v[1];
    return n ? bits % n : 0;
  }
  /// Reserves `count` consecutive indices for a bulk draw on a back end; returns the first.
  std::uint64_t reserve(std::uint64_t count) {
    const std::uint64_t first = offset_;
    offset_ += count;
    return first;
  }

  std::uint64_t seed() const { return seed_; }
  std::uint64_t stream() const { return stream_; }
  std::uint64_t offset() const { return offset_; }
  /// A generator for a different purpose under the same seed.
  Generator fork(std::uint64_t stream) const { return Generator(seed_, stream, 0); }

 private:
  std::uint64_t seed_, stream_, offset_;
};

}  // namespace progdiff

#pragma once
// Philox-4x32-10 counter-based generator (Salmon et al., SC'11, "Parallel random numbers:
// as easy as 1, 2, 3"), the generator of Random123 and cuRAND. A draw is a pure function of
// (key, counter), so any element of any noise tensor can be computed independently on any
// back end, and a resumed run reproduces the same numbers.
#include <cmath>
#include <cstdint>

#include "progdiff/backend/math/host_device.hpp"

namespace progdiff::math {

struct Philox4x32 {
  std::uint32_t v[4];
};

PROGDIFF_INLINE void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}

/// Ten rounds of Philox-4x32 on `counter` under `key` (both as in Random123).
PROGDIFF_INLINE Philox4x32 philox4x32_10(Philox4x32 ctr, std::uint32_t key0, std::uint32_t key1) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(kM0, ctr.v[0], hi0, lo0);
    philox_mulhilo(kM1, ctr.v[2], hi1, lo1);
    ctr = Philox4x32{{hi1 ^ ctr.v[1] ^ key0, lo1, hi0 ^ ctr.v[3] ^ key1, lo0}};
    key0 += kW0;
    key1 += kW1;
  }
  return ctr;
}

/// The four 32-bit words of block `block` of stream `stream` under `seed`.
/// Key = seed; counter = (block low, block high, stream low, stream high).
PROGDIFF_INLINE Philox4x32 philox_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t block) {
  const Philox4x32 ctr{{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                        static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)}};
  return philox4x32_10(ctr, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

/// Maps 32 random bits to a float in (0, 1]: never 0, so log() is safe.
PROGDIFF_INLINE float uniform_from_bits(std::uint32_t bits) {
  return (static_cast<float>(bits >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

/// Maps 32 random bits to a double in (0, 1] (24 bits of resolution, like the float path,
/// so both element types see the same numbers).
PROGDIFF_INLINE double uniform_from_bits_f64(std::uint32_t bits) {
  return (static_cast<double>(bits >> 8) + 1.0) * (1.0 / 16777216.0);
}

/// Element `index` of the uniform (0, 1] sequence of (seed, stream).
PROGDIFF_INLINE float philox_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  const Philox4x32 r = philox_block(seed, stream, index >> 2);
  return uniform_from_bits(r.v[index & 3]);
}

/// Element `index` of the standard-normal sequence of (seed, stream): Box-Muller on the
/// pair of words (2k, 2k+1) of the block, cosine branch for even, sine for odd indices.
template <class T>
PROGDIFF_INLINE T philox_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  const Philox4x32 r = philox_block(seed, stream, index >> 2);
  const unsigned pair = static_cast<unsigned>(index & 2);
  const double u1 = uniform_from_bits_f64(r.v[pair]);
  const double u2 = uniform_from_bits_f64(r.v[pair + 1]);
  const double radius = sqrt(-2.0 * log(u1));
  const double angle = 6.283185307179586476925 * u2;
  return static_cast<T>((index & 1) ? radius * sin(angle) : radius * cos(angle));
}

}  // namespace progdiff::math

#include <doctest/doctest.h>

#include <cmath>

#include "progdiff/backend/math/philox.hpp"

namespace progdiff_tests_philox {

using progdiff::math::Philox4x32;
using progdiff::math::philox4x32_10;

// Known-answer vectors published with Random123 (kat_vectors, "philox4x32 10" lines):
// counter[4], key[2] -> output[4].
TEST_CASE("Philox-4x32-10 matches the Random123 known-answer vectors") {
  struct Case {
    Philox4x32 ctr;
    std::uint32_t key0, key1;
    Philox4x32 expected;
  };
  const Case cases[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
       0xffffffffu,
       0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
       0xa4093822u,
       0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const auto& c : cases) {
    const Philox4x32 out = philox4x32_10(c.ctr, c.key0, c.key1);
    for (int i = 0; i < 4; ++i) CHECK(out.v[i] == c.expected.v[i]);
  }
}

TEST_CASE("Philox normals have zero mean and unit variance") {
  double sum = 0, sum_sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double z = progdiff::math::philox_normal<double>(7, 3, static_cast<std::uint64_t>(i));
    sum += z;
    sum_sq += z * z;
  }
  const double mean = sum / n, var = sum_sq / n - mean * mean;
  CHECK(std::abs(mean) < 5.0 / std::sqrt(n));
  CHECK(std::abs(var - 1.0) < 0.02);
}

}  // namespace progdiff_tests_philox

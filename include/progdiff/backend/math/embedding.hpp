#pragma once
// Sinusoidal timestep embedding (Vaswani et al. 2017, as DDPM uses it), one element at a time.
#include <cmath>
#include <cstdint>

#include "progdiff/backend/math/host_device.hpp"

namespace progdiff::math {

/// Column k of the embedding of timestep t into `dim` columns: [sin(t f_i) | cos(t f_i)] with
/// f_i = exp(-ln(max_period) * i / (half - shift)), half = dim / 2; an odd dim's last column
/// is zero. shift = 1 is DDPM's convention, shift = 0 diffusers' default.
PROGDIFF_INLINE double timestep_frequency(std::int64_t i, std::int64_t half, double max_period, double shift) {
  return exp(-log(max_period) * static_cast<double>(i) / (static_cast<double>(half) - shift));
}

/// Column k given the frequency of its pair, freq = timestep_frequency(k mod half, ...): a
/// kernel that fills many rows computes the `half` frequencies once.
PROGDIFF_INLINE double timestep_embedding_value_at(double t, std::int64_t k, std::int64_t dim, double freq) {
  const std::int64_t half = dim / 2;
  if (k >= 2 * half) return 0.0;
  return k < half ? sin(t * freq) : cos(t * freq);
}

PROGDIFF_INLINE double timestep_embedding_value(double t, std::int64_t k, std::int64_t dim, double max_period,
                                                double shift) {
  const std::int64_t half = dim / 2;
  if (k >= 2 * half) return 0.0;
  return timestep_embedding_value_at(t, k, dim, timestep_frequency(k < half ? k : k - half, half, max_period, shift));
}

}  // namespace progdiff::math

#pragma once
// GroupNorm arithmetic (Wu & He 2018), shared by the back ends. One group is a contiguous
// run of (C / G) * HW values in an NCHW tensor; statistics accumulate in double so large
// groups keep float32 accuracy.
#include <cmath>
#include <cstdint>

#include "progdiff/backend/math/host_device.hpp"

namespace progdiff::math {

struct GroupStats {
  double mean;
  double rstd;  // 1 / sqrt(var + eps), biased variance as in PyTorch
};

template <class T>
PROGDIFF_INLINE GroupStats group_norm_stats(const T* x, std::int64_t count, double eps) {
  double sum = 0.0, sum_sq = 0.0;
  for (std::int64_t i = 0; i < count; ++i) sum += static_cast<double>(x[i]);
  const double mean = sum / static_cast<double>(count);
  for (std::int64_t i = 0; i < count; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    sum_sq += d * d;
  }
  return GroupStats{mean, 1.0 / sqrt(sum_sq / static_cast<double>(count) + eps)};
}

/// Input gradient of y = gamma * (x - mean) * rstd + beta over one group, given the two
/// group sums of g = dy * gamma: sum(g) and sum(g * xhat).
/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
PROGDIFF_INLINE double group_norm_dx(double g, double xhat, double rstd, double mean_g, double mean_gxhat) {
  return rstd * (g - mean_g - xhat * mean_gxhat);
}

}  // namespace progdiff::math

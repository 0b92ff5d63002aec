#pragma once
// SnrFlops: eq. 8 of the Step-Adaptive paper. Difficulty is -SNR (dB, eq. 7): standardized,
// min-max normalized to Ratio in [0, 1], and mapped to FLOPs = (k + (1 - k) Ratio) F, so the
// noisiest (hardest) timestep gets F and the cleanest gets k F.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/schedule/quantities.hpp"

namespace progdiff::difficulty {

/// Min-max normalization of x to [0, 1]; all ones when x is constant (nothing is easier than
/// anything else, so nothing loses FLOPs).
inline std::vector<double> min_max_ratio(const std::vector<double>& x) {
  std::vector<double> r(x.size(), 1.0);
  if (x.empty()) return r;
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  const double range = *hi - *lo;
  if (!(range > 0)) return r;
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = (x[i] - *lo) / range;
  return r;
}

inline void check_min_ratio(double k, const char* who) {
  require(k > 0 && k <= 1, std::string(who) + ": minimum FLOPs ratio k must lie in (0, 1], got " + std::to_string(k));
}

struct SnrFlops {
  double k = 0.5;  // minimum FLOPs ratio; the paper uses 0.5

  template <schedule::NoiseSchedule S>
  std::vector<double> fractions(const S& s) const {
    check_min_ratio(k, "SnrFlops");
    const auto n = static_cast<std::size_t>(s.size());
    std::vector<double> neg_snr(n);
    for (std::size_t i = 0; i < n; ++i) neg_snr[i] = -schedule::snr_db(s, static_cast<std::int64_t>(i));
    // The z-score step of eq. 8 is an increasing affine map, which min-max removes again;
    // it is kept so the numbers follow the paper step by step.
    double mean = 0, var = 0;
    for (double v : neg_snr) mean += v;
    mean /= static_cast<double>(n);
    for (double v : neg_snr) var += (v - mean) * (v - mean);
    const double sd = std::sqrt(var / static_cast<double>(n));
    if (sd > 0)
      for (double& v : neg_snr) v = (v - mean) / sd;
    std::vector<double> r = min_max_ratio(neg_snr);
    for (double& v : r) v = k + (1 - k) * v;
    return r;
  }
};

}  // namespace progdiff::difficulty

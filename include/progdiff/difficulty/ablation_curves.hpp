#pragma once
// The FLOPs schedules the Step-Adaptive paper compares against in Table 3: a constant budget,
// one rising linearly over timesteps and one falling linearly, each from k F to F.
#include <cstdint>
#include <vector>

#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/schedule/noise_schedule.hpp"

namespace progdiff::difficulty {

/// Linear position of grid point i in [0, 1] (0 for a single point).
inline double grid_position(std::int64_t i, std::int64_t n) {
  return n > 1 ? static_cast<double>(i) / static_cast<double>(n - 1) : 0.0;
}

/// The same budget `level` F at every timestep ("Constant Schedule").
struct ConstantFlops {
  double level = 1.0;
  template <schedule::NoiseSchedule S>
  std::vector<double> fractions(const S& s) const {
    check_min_ratio(level, "ConstantFlops");
    return std::vector<double>(static_cast<std::size_t>(s.size()), level);
  }
};

/// k F at the first timestep rising linearly to F at the last ("Uni-increasing Schedule").
struct UniIncreasingFlops {
  double k = 0.5;
  template <schedule::NoiseSchedule S>
  std::vector<double> fractions(const S& s) const {
    check_min_ratio(k, "UniIncreasingFlops");
    std::vector<double> f(static_cast<std::size_t>(s.size()));
    for (std::int64_t i = 0; i < s.size(); ++i) f[i] = k + (1 - k) * grid_position(i, s.size());
    return f;
  }
};

/// F at the first timestep falling linearly to k F at the last ("Uni-decreasing Schedule").
struct UniDecreasingFlops {
  double k = 0.5;
  template <schedule::NoiseSchedule S>
  std::vector<double> fractions(const S& s) const {
    check_min_ratio(k, "UniDecreasingFlops");
    std::vector<double> f(static_cast<std::size_t>(s.size()));
    for (std::int64_t i = 0; i < s.size(); ++i) f[i] = 1 - (1 - k) * grid_position(i, s.size());
    return f;
  }
};

}  // namespace progdiff::difficulty

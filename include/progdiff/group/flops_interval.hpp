#pragma once
// FLOPs-interval grouping, eqs. 9-10 of the Step-Adaptive paper: the budget range [k F, F] is cut
// into N equal intervals and timestep t joins the group i whose interval (v(i), w(i)] holds
// FLOPs(t), with v(0) = 0.
//
// Upper limits. Eq. 9 as printed, (i/N + (N - i)/N k) F for 0 <= i < N, gives w(0) = k F and
// w(N - 1) < F, which would leave the hardest timesteps in no group. We take the upper edge of
// the i-th equal interval, w(i) = (k + (1 - k)(i + 1)/N) F, so w(N - 1) = F; v(i) = w(i - 1).
// Each group's budget is its upper limit w(i).
//
// Empty intervals. When no timestep's FLOPs fall in (v(i), w(i)] (large N, or a budget curve
// that jumps), that interval yields no group: the partition holds only the non-empty groups,
// in order, each with its own w(i). So N is an upper bound on the group count.
//
// The budget curve must be monotone in t (either direction); otherwise a group would not be
// contiguous, and ConfigError names the first index that breaks monotonicity.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/difficulty/difficulty_curve.hpp"
#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/group/partition.hpp"

namespace progdiff::group {

/// w(i) / F for interval i of N between k and 1.
inline double flops_upper_limit(std::int64_t i, std::int64_t n, double k) {
  return k + (1 - k) * static_cast<double>(i + 1) / static_cast<double>(n);
}

template <class Curve = difficulty::SnrFlops>
struct FlopsIntervalGrouper {
  std::int64_t groups = 10;  // N; the paper uses 10
  Curve curve{};

  template <schedule::NoiseSchedule S>
  Partition group(const S& s) const {
    static_assert(difficulty::check_difficulty_curve<Curve, S>());
    require(groups >= 1 && groups <= s.size(), "FlopsInterval: group count N must lie in [1, " +
                                                   std::to_string(s.size()) + "], got " + std::to_string(groups));
    const std::vector<double> f = curve.fractions(s);
    require(static_cast<std::int64_t>(f.size()) == s.size(), "FlopsInterval: the curve gave " +
                                                                 std::to_string(f.size()) + " budgets for " +
                                                                 std::to_string(s.size()) + " timesteps");
    const auto [lo_it, hi_it] = std::minmax_element(f.begin(), f.end());
    const double k = *lo_it / *hi_it;  // the curve's own minimum ratio; F = its maximum
    int direction = 0;
    for (std::size_t i = 1; i < f.size(); ++i) {
      const int d = f[i] > f[i - 1] ? 1 : (f[i] < f[i - 1] ? -1 : 0);
      if (d && direction && d != direction)
        throw ConfigError("FlopsInterval: the FLOPs budget is not monotone in t (it turns at timestep " +
                          std::to_string(i) + "), so its groups would not be contiguous");
      if (d) direction = d;
    }
    std::vector<double> limit(static_cast<std::size_t>(groups));
    for (std::int64_t i = 0; i < groups; ++i) limit[i] = flops_upper_limit(i, groups, k);
    // interval of each timestep: the smallest i with FLOPs(t) <= w(i), with a relative slack
    // so a budget equal to a limit up to rounding lands in the lower interval, as (v, w] says
    std::vector<std::int64_t> interval(f.size());
    for (std::size_t t = 0; t < f.size(); ++t) {
      const double x = f[t] / *hi_it;
      std::int64_t i = 0;
      while (i + 1 < groups && x > limit[i] * (1 + 1e-12)) ++i;
      interval[t] = i;
    }
    // order the groups along t: a decreasing curve puts the highest interval first
    if (direction < 0)
      for (auto& i : interval) i = groups - 1 - i;
    std::vector<double> budget(limit);
    if (direction < 0) std::reverse(budget.begin(), budget.end());
    return partition_from_labels(interval, budget);
  }
};

/// FLOPs-interval grouping with the group count N fixed in the type.
template <std::int64_t N, class Curve = difficulty::SnrFlops>
struct FlopsInterval : FlopsIntervalGrouper<Curve> {
  static_assert(N >= 1, "progdiff: FlopsInterval needs at least one group (N >= 1)");
  explicit FlopsInterval(Curve c = {}) : FlopsIntervalGrouper<Curve>{N, c} {}
};

}  // namespace progdiff::group

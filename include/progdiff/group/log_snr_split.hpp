#pragma once
// LogSnrSplit: N equal-width intervals of log-SNR lambda = ln(alpha-bar / (1 - alpha-bar)),
// from lambda at the first grid point down to lambda at the last (the "SNR" baseline of
// Table 4 of the multi-stage paper). Interval g holds lambda in (hi - (g+1) w, hi - g w]
// (the first also holds hi itself). As with FlopsInterval, an interval that holds no grid point
// gives no group. log-SNR must decrease along t (every built-in schedule's does).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/schedule/quantities.hpp"

namespace progdiff::group {

struct LogSnrSplit {
  std::int64_t groups = 3;

  template <schedule::NoiseSchedule S>
  Partition group(const S& s) const {
    const std::int64_t n = s.size();
    require(groups >= 1 && groups <= n,
            "LogSnrSplit: group count must lie in [1, " + std::to_string(n) + "], got " + std::to_string(groups));
    std::vector<double> lambda(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      lambda[i] = schedule::log_snr(s, i);
      require(i == 0 || lambda[i] <= lambda[i - 1],
              "LogSnrSplit: log-SNR increases at grid index " + std::to_string(i) + "; it must fall along t");
    }
    const double hi = lambda.front(), width = (hi - lambda.back()) / static_cast<double>(groups);
    std::vector<std::int64_t> label(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t g = width > 0 ? static_cast<std::int64_t>(std::ceil((hi - lambda[i]) / width)) - 1 : 0;
      label[i] = std::clamp<std::int64_t>(g, 0, groups - 1);
    }
    for (std::int64_t i = 1; i < n; ++i) label[i] = std::max(label[i], label[i - 1]);  // rounding guard
    return partition_from_labels(label, {});
  }
};

}  // namespace progdiff::group

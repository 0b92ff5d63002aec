#pragma once
// Partition: the result of every grouper. Groups are contiguous, ordered runs of grid indices
// covering [0, size) exactly once: group g holds indices [starts[g], starts[g + 1]).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/schedule/noise_schedule.hpp"

namespace progdiff::group {

struct Partition {
  std::vector<std::int64_t> starts;  // N + 1 entries: 0 = starts[0] < ... < starts[N] = size
  std::vector<double> budgets;       // per group FLOPs fraction of F, or empty when the grouper sets none

  std::int64_t groups() const { return starts.empty() ? 0 : static_cast<std::int64_t>(starts.size()) - 1; }
  std::int64_t size() const { return starts.empty() ? 0 : starts.back(); }
  std::int64_t begin(std::int64_t g) const { return starts[static_cast<std::size_t>(g)]; }
  std::int64_t end(std::int64_t g) const { return starts[static_cast<std::size_t>(g) + 1]; }

  /// The group of grid index i (binary search).
  std::int64_t group_of(std::int64_t i) const {
    require(i >= 0 && i < size(),
            "Partition::group_of: index " + std::to_string(i) + " outside [0, " + std::to_string(size()) + ")");
    std::int64_t lo = 0, hi = groups();
    while (hi - lo > 1) {
      const std::int64_t mid = (lo + hi) / 2;
      (starts[static_cast<std::size_t>(mid)] <= i ? lo : hi) = mid;
    }
    return lo;
  }

  /// The group of each fractional timestep: that of its nearest grid index, clamped to
  /// [0, size) (what a continuous-time sampler's off-grid steps are routed by).
  std::vector<std::int64_t> groups_of_nearest(std::span<const double> timesteps) const {
    std::vector<std::int64_t> g;
    g.reserve(timesteps.size());
    for (double t : timesteps) g.push_back(group_of(std::clamp<std::int64_t>(std::llround(t), 0, size() - 1)));
    return g;
  }

  /// The N - 1 inner boundaries as grid indices (the first index of groups 1..N-1).
  std::vector<std::int64_t> boundaries() const {
    return starts.size() <= 2 ? std::vector<std::int64_t>{}
                              : std::vector<std::int64_t>(starts.begin() + 1, starts.end() - 1);
  }

  /// Throws ConfigError unless the partition covers [0, size) with non-empty, ordered groups.
  void validate(std::int64_t expected_size) const {
    require(starts.size() >= 2 && starts.front() == 0 && starts.back() == expected_size,
            "Partition: starts must run from 0 to " + std::to_string(expected_size));
    for (std::size_t g = 0; g + 1 < starts.size(); ++g)
      require(starts[g] < starts[g + 1], "Partition: group " + std::to_string(g) + " is empty or out of order");
    require(budgets.empty() || budgets.size() + 1 == starts.size(), "Partition: one budget per group expected");
  }
};

/// Boundary times t in [0, 1]: the time of the first grid point of each group 1..N-1.
template <schedule::NoiseSchedule S>
std::vector<double> boundary_times(const Partition& p, const S& s) {
  std::vector<double> t;
  for (std::int64_t b : p.boundaries()) t.push_back(s.time(b));
  return t;
}

/// Boundary noise levels sigma_t (eq. 1; EDM's sigma) at the same grid points.
template <schedule::NoiseSchedule S>
std::vector<double> boundary_sigmas(const Partition& p, const S& s) {
  std::vector<double> out;
  for (std::int64_t b : p.boundaries()) out.push_back(s.sigma(b));
  return out;
}

/// Builds a partition from a per-index label that is non-decreasing in the index; labels that
/// no index carries give no group (so the result may hold fewer groups than labels).
inline Partition partition_from_labels(const std::vector<std::int64_t>& label,
                                       const std::vector<double>& label_budget) {
  Partition p;
  p.starts.push_back(0);
  for (std::size_t i = 0; i < label.size(); ++i) {
    if (i > 0 && label[i] != label[i - 1]) {
      require(label[i] > label[i - 1],
              "partition_from_labels: labels must not decrease (index " + std::to_string(i) + ")");
      p.starts.push_back(static_cast<std::int64_t>(i));
    }
    if (!label_budget.empty() && (i == 0 || label[i] != label[i - 1]))
      p.budgets.push_back(label_budget[static_cast<std::size_t>(label[i])]);
  }
  p.starts.push_back(static_cast<std::int64_t>(label.size()));
  return p;
}

}  // namespace progdiff::group

#pragma once
// Partitions on EDM's sigma grid (schedule::EdmSigma): the interval boundaries of the multi-stage
// paper's [0, t1), [t1, t2), [t2, 1] for EDM, in timesteps and in sigmas.
//
// A boundary is the first timestep of a group, starts[k] of a Partition; in sigma units it is
// grid.sigma_at(starts[k]). A noise level belongs to group k when tau(sigma) >= starts[k] (and not
// to a later group), with tau within EdmSigma::kSnap of an integer taken as that integer, so a
// grid sigma routes exactly as its integer timestep does in training. Boundaries given in sigma
// (a paper's table) become the first grid timestep at or above each.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/schedule/edm_sigma.hpp"

namespace progdiff::group {

namespace detail {
inline void check_edm_partition(const schedule::EdmSigma& grid, const Partition& p, const char* who) {
  require(p.size() == grid.size(), std::string(who) + ": the partition covers " + std::to_string(p.size()) +
                                       " timesteps, the EDM grid has " + std::to_string(grid.size()));
}
}  // namespace detail

/// The group of `partition` (over the grid's T timesteps) holding timestep tau; tau is clamped to
/// [0, T - 1] (a churned sigma above sigma_max belongs to the last group).
inline std::int64_t group_of_timestep(const schedule::EdmSigma& grid, const Partition& partition, double tau) {
  detail::check_edm_partition(grid, partition, "group_of_timestep");
  const double r = std::round(tau);
  const double snapped = std::abs(tau - r) <= schedule::EdmSigma::kSnap ? r : tau;
  const double clamped = std::clamp(snapped, 0.0, static_cast<double>(grid.size() - 1));
  std::int64_t g = 0;
  for (std::int64_t k = 1; k < partition.groups(); ++k)
    if (clamped >= static_cast<double>(partition.begin(k))) g = k;
  return g;
}

/// The group of `partition` holding noise level sigma > 0.
inline std::int64_t group_of_sigma(const schedule::EdmSigma& grid, const Partition& partition, double sigma) {
  return group_of_timestep(grid, partition, grid.timestep_of(sigma));
}

/// The inner boundaries of `partition` in sigma units, ascending: sigma(starts[k]), k = 1..K-1.
inline std::vector<double> sigma_boundaries(const schedule::EdmSigma& grid, const Partition& partition) {
  detail::check_edm_partition(grid, partition, "sigma_boundaries");
  std::vector<double> s;
  for (std::int64_t b : partition.boundaries()) s.push_back(grid.sigma_at(static_cast<double>(b)));
  return s;
}

/// The partition whose group k + 1 starts at the first grid timestep with sigma >= boundaries[k]
/// (ascending sigmas inside (sigma_min, sigma_max]); a boundary on the grid maps to its timestep.
inline Partition partition_at_sigmas(const schedule::EdmSigma& grid, std::span<const double> boundaries) {
  Partition p;
  p.starts.push_back(0);
  for (std::size_t k = 0; k < boundaries.size(); ++k) {
    const double b = boundaries[k];
    require(b > grid.sigma_min() && b <= grid.sigma_max() && (k == 0 || b > boundaries[k - 1]),
            "partition_at_sigmas: boundary " + std::to_string(k) + " = " + std::to_string(b) +
                " must lie in (sigma_min, sigma_max] = (" + std::to_string(grid.sigma_min()) + ", " +
                std::to_string(grid.sigma_max()) + "] and above the previous one");
    const double tau = grid.timestep_of(b);
    const double r = std::round(tau);
    const auto start = static_cast<std::int64_t>(std::abs(tau - r) <= schedule::EdmSigma::kSnap ? r : std::ceil(tau));
    require(start > p.starts.back(), "partition_at_sigmas: boundary " + std::to_string(k) + " (sigma " +
                                         std::to_string(b) + ") leaves an empty group on a grid of " +
                                         std::to_string(grid.size()) + " timesteps");
    p.starts.push_back(start);
  }
  p.starts.push_back(grid.size());
  p.validate(grid.size());
  return p;
}

}  // namespace progdiff::group

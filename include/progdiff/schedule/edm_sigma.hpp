#pragma once
// EdmSigma: the one map between an EDM model's noise levels sigma and progdiff's timesteps, which
// training (timestep samplers, partitions, checkpoints) and sampling (continuous sigmas) share.
// Timestep tau in [0, T - 1] has
//   sigma(tau) = (sigma_min^(1/rho) + tau / (T - 1) (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho
// (Karras et al. 2022, eq. 5, read with the time t = tau / (T - 1) rising from sigma_min to
// sigma_max), the grid of schedule::EDM(T, sigma_min, sigma_max, rho) at integer tau, and
//   tau(sigma) = (T - 1) (sigma^(1/rho) - sigma_min^(1/rho)) / (sigma_max^(1/rho) - sigma_min^(1/rho))
// its exact inverse at any sigma > 0.
//
// Interval boundaries (the multi-stage paper's [0, t1), [t1, t2), [t2, 1] for EDM): a boundary is
// the first timestep of a group, starts[k] of a group::Partition; in sigma units it is
// sigma(starts[k]). A noise level belongs to group k when tau(sigma) >= starts[k] (and not to a
// later group), with tau within kSnap of an integer taken as that integer, so a grid sigma
// routes exactly as its integer timestep does in training. Boundaries given in sigma (a paper's
// table) become the first grid timestep at or above each.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/schedule/continuous.hpp"

namespace progdiff::schedule {

class EdmSigma {
 public:
  /// A timestep this close to an integer is that integer (absorbs the rounding of tau(sigma(i))).
  static constexpr double kSnap = 1e-6;

  explicit EdmSigma(std::int64_t timesteps = 1000, double sigma_min = 0.002, double sigma_max = 80.0, double rho = 7.0)
      : size_(timesteps), sigma_min_(sigma_min), sigma_max_(sigma_max), rho_(rho) {
    require(timesteps >= 2, "EdmSigma: needs at least 2 timesteps, got " + std::to_string(timesteps));
    require(sigma_min > 0 && sigma_max > sigma_min,
            "EdmSigma: needs 0 < sigma_min < sigma_max, got sigma_min = " + std::to_string(sigma_min) +
                ", sigma_max = " + std::to_string(sigma_max));
    require(rho > 0, "EdmSigma: rho must be > 0, got " + std::to_string(rho));
    lo_ = std::pow(sigma_min, 1.0 / rho);
    hi_ = std::pow(sigma_max, 1.0 / rho);
  }

  std::int64_t size() const { return size_; }
  double sigma_min() const { return sigma_min_; }
  double sigma_max() const { return sigma_max_; }
  double rho() const { return rho_; }

  /// The noise level of (possibly fractional) timestep tau; tau outside [0, T - 1] extrapolates.
  double sigma_at(double tau) const {
    const double t = tau / static_cast<double>(size_ - 1);
    return std::pow(lo_ + t * (hi_ - lo_), rho_);
  }
  /// The fractional timestep of noise level sigma > 0 (exact inverse of sigma_at).
  double timestep_of(double sigma) const {
    require(sigma > 0 && std::isfinite(sigma),
            "EdmSigma::timestep_of: sigma must be positive and finite, got " + std::to_string(sigma));
    return static_cast<double>(size_ - 1) * (std::pow(sigma, 1.0 / rho_) - lo_) / (hi_ - lo_);
  }
  /// The schedule with this grid (s_t = 1, sigma_t = sigma_at(i)), for the trainers and groupers.
  EDM schedule() const { return EDM(size_, sigma_min_, sigma_max_, rho_, 0.0); }

  /// The group of `partition` (over this grid's T timesteps) holding timestep tau; tau is clamped
  /// to [0, T - 1] (a churned sigma above sigma_max belongs to the last group).
  std::int64_t group_of_timestep(const group::Partition& partition, double tau) const {
    check_partition(partition, "EdmSigma::group_of_timestep");
    const double r = std::round(tau);
    const double snapped = std::abs(tau - r) <= kSnap ? r : tau;
    const double clamped = std::clamp(snapped, 0.0, static_cast<double>(size_ - 1));
    std::int64_t g = 0;
    for (std::int64_t k = 1; k < partition.groups(); ++k)
      if (clamped >= static_cast<double>(partition.begin(k))) g = k;
    return g;
  }
  std::int64_t group_of_sigma(const group::Partition& partition, double sigma) const {
    return group_of_timestep(partition, timestep_of(sigma));
  }

  /// The inner boundaries of `partition` in sigma units, ascending: sigma(starts[k]), k = 1..K-1.
  std::vector<double> sigma_boundaries(const group::Partition& partition) const {
    check_partition(partition, "EdmSigma::sigma_boundaries");
    std::vector<double> s;
    for (std::int64_t b : partition.boundaries()) s.push_back(sigma_at(static_cast<double>(b)));
    return s;
  }

  /// The partition whose group k + 1 starts at the first grid timestep with sigma >= boundaries[k]
  /// (ascending sigmas inside (sigma_min, sigma_max]); a boundary on the grid maps to its timestep.
  group::Partition partition_at_sigmas(std::span<const double> boundaries) const {
    group::Partition p;
    p.starts.push_back(0);
    for (std::size_t k = 0; k < boundaries.size(); ++k) {
      const double b = boundaries[k];
      require(b > sigma_min_ && b <= sigma_max_ && (k == 0 || b > boundaries[k - 1]),
              "EdmSigma::partition_at_sigmas: boundary " + std::to_string(k) + " = " + std::to_string(b) +
                  " must lie in (sigma_min, sigma_max] = (" + std::to_string(sigma_min_) + ", " +
                  std::to_string(sigma_max_) + "] and above the previous one");
      const double tau = timestep_of(b);
      const double r = std::round(tau);
      const auto start = static_cast<std::int64_t>(std::abs(tau - r) <= kSnap ? r : std::ceil(tau));
      require(start > p.starts.back(), "EdmSigma::partition_at_sigmas: boundary " + std::to_string(k) + " (sigma " +
                                           std::to_string(b) + ") leaves an empty group on a grid of " +
                                           std::to_string(size_) + " timesteps");
      p.starts.push_back(start);
    }
    p.starts.push_back(size_);
    p.validate(size_);
    return p;
  }

 private:
  void check_partition(const group::Partition& p, const char* who) const {
    require(p.size() == size_, std::string(who) + ": the partition covers " + std::to_string(p.size()) +
                                   " timesteps, the EDM grid has " + std::to_string(size_));
  }

  std::int64_t size_;
  double sigma_min_, sigma_max_, rho_, lo_ = 0.0, hi_ = 0.0;
};

}  // namespace progdiff::schedule

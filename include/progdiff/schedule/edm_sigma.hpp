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
// Interval boundaries on this grid (a group::Partition's starts in sigma units, and the group of
// a sigma) are group/edm_partition.hpp's: a partition is a grouping, which sits above schedules.
#include <cmath>
#include <cstdint>
#include <string>

#include "progdiff/core/error.hpp"
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

 private:
  std::int64_t size_;
  double sigma_min_, sigma_max_, rho_, lo_ = 0.0, hi_ = 0.0;
};

}  // namespace progdiff::schedule

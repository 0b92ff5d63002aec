#pragma once
// Continuous-time schedules of eq. 1 of the multi-stage paper, x_t = s_t x_0 + s_t sigma_t eps,
// each sampled on a grid of `grid_size` times in [t_min, 1]:
//   VP   (Song et al. 2021): beta(t) = beta_min + t (beta_max - beta_min),
//        s_t = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2) / 2), sigma_t = sqrt(1 - s_t^2) / s_t
//   VE   (Song et al. 2021): s_t = 1, sigma_t = sigma_min (sigma_max / sigma_min)^t
//   EDM  (Karras et al. 2022, eq. 5 discretization): s_t = 1,
//        sigma_t = (sigma_min^(1/rho) + t (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho,
//        so t = 1 - i / (N - 1) is EDM's sampling step i of N. schedule::EdmSigma (edm_sigma.hpp)
//        maps any sigma to a timestep of this grid and back, for preconditioned EDM models.
#include <cmath>
#include <cstdint>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/schedule/tabulated.hpp"

namespace progdiff::schedule {

/// The grid time of point i of n in [t_min, 1], evenly spaced, last point t = 1.
inline double grid_time(std::int64_t i, std::int64_t n, double t_min) {
  return n == 1 ? 1.0 : t_min + (1.0 - t_min) * static_cast<double>(i) / static_cast<double>(n - 1);
}

inline void check_grid(std::int64_t n, double t_min, const char* who) {
  require(n >= 1, std::string(who) + ": grid_size must be >= 1, got " + std::to_string(n));
  require(t_min >= 0 && t_min < 1, std::string(who) + ": t_min must lie in [0, 1), got " + std::to_string(t_min));
}

/// Variance-preserving SDE with a linear beta(t).
class VP : public Tabulated {
 public:
  explicit VP(std::int64_t grid_size = 1000, double beta_min = 0.1, double beta_max = 20.0, double t_min = 1e-5)
      : beta_min_(beta_min), beta_max_(beta_max), t_min_(t_min) {
    check_grid(grid_size, t_min, "VP");
    require(beta_min >= 0 && beta_max > beta_min,
            "VP: needs 0 <= beta_min < beta_max, got beta_min = " + std::to_string(beta_min) +
                ", beta_max = " + std::to_string(beta_max));
    require(t_min > 0 || beta_min > 0 || grid_size > 1, "VP: t_min must be > 0");
    for (std::int64_t i = 0; i < grid_size; ++i) {
      const double t = grid_time(i, grid_size, t_min);
      push_vp(t, log_alpha_bar_at(t));
    }
  }
  /// ln alpha-bar(t) = -integral_0^t beta(u) du.
  double log_alpha_bar_at(double t) const { return -(beta_min_ * t + 0.5 * (beta_max_ - beta_min_) * t * t); }
  double beta_at(double t) const { return beta_min_ + t * (beta_max_ - beta_min_); }
  double scale_at(double t) const { return std::exp(0.5 * log_alpha_bar_at(t)); }
  double sigma_at(double t) const {
    const double la = log_alpha_bar_at(t);
    return std::exp(0.5 * (std::log(-std::expm1(la)) - la));
  }

 private:
  double beta_min_, beta_max_, t_min_;
};

/// Variance-exploding SDE with a geometric sigma(t).
class VE : public Tabulated {
 public:
  explicit VE(std::int64_t grid_size = 1000, double sigma_min = 0.01, double sigma_max = 50.0, double t_min = 0.0)
      : sigma_min_(sigma_min), sigma_max_(sigma_max) {
    check_grid(grid_size, t_min, "VE");
    require(sigma_min > 0 && sigma_max > sigma_min,
            "VE: needs 0 < sigma_min < sigma_max, got sigma_min = " + std::to_string(sigma_min) +
                ", sigma_max = " + std::to_string(sigma_max));
    for (std::int64_t i = 0; i < grid_size; ++i) {
      const double t = grid_time(i, grid_size, t_min);
      push_ve(t, sigma_at(t));
    }
  }
  double scale_at(double) const { return 1.0; }
  double sigma_at(double t) const { return sigma_min_ * std::pow(sigma_max_ / sigma_min_, t); }

 private:
  double sigma_min_, sigma_max_;
};

/// EDM: s_t = 1, sigma_t on Karras et al.'s rho-warped grid.
class EDM : public Tabulated {
 public:
  explicit EDM(std::int64_t grid_size = 1000, double sigma_min = 0.002, double sigma_max = 80.0, double rho = 7.0,
               double t_min = 0.0)
      : sigma_min_(sigma_min), sigma_max_(sigma_max), rho_(rho) {
    check_grid(grid_size, t_min, "EDM");
    require(sigma_min > 0 && sigma_max > sigma_min,
            "EDM: needs 0 < sigma_min < sigma_max, got sigma_min = " + std::to_string(sigma_min) +
                ", sigma_max = " + std::to_string(sigma_max));
    require(rho > 0, "EDM: rho must be > 0, got " + std::to_string(rho));
    for (std::int64_t i = 0; i < grid_size; ++i) {
      const double t = grid_time(i, grid_size, t_min);
      push_ve(t, sigma_at(t));
    }
  }
  double scale_at(double) const { return 1.0; }
  double sigma_at(double t) const {
    const double lo = std::pow(sigma_min_, 1.0 / rho_), hi = std::pow(sigma_max_, 1.0 / rho_);
    return std::pow(lo + t * (hi - lo), rho_);
  }
  double rho() const { return rho_; }

 private:
  double sigma_min_, sigma_max_, rho_;
};

}  // namespace progdiff::schedule

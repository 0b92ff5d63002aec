#pragma once
// The Gaussian posterior q(x_{k-1} | x_k, x0) of a diffusion chain given by its alpha-bars
// (Ho et al. 2020, eqs. 6-7; IDDPM, Nichol & Dhariwal 2021, eqs. 10-12), with a = alpha-bar:
//   beta_k  = 1 - a_k / a_{k-1},  a_{-1} = 1
//   mean    = c1_k x0 + c2_k x_k,  c1_k = sqrt(a_{k-1}) beta_k / (1 - a_k),
//                                   c2_k = sqrt(1 - beta_k) (1 - a_{k-1}) / (1 - a_k)
//   beta~_k = beta_k (1 - a_{k-1}) / (1 - a_k)    (0 at k = 0)
// The chain is either every step of a schedule or the kept steps of a respaced one: IDDPM
// samples with fewer steps by recomputing the betas from the kept alpha-bars (sec. 4), and the
// same formulas then hold with k counting kept steps.
//
// A learned variance interpolates in the log domain (IDDPM eq. 15, "learned range"):
//   log Sigma_k = f log beta_k + (1 - f) log beta~_k,  f = (v + 1) / 2 from the network's v output,
// where log beta~_0 (= -inf) is replaced by log beta~_1, as IDDPM's clipped log variance does,
// so the decoder step k = 0 gets a finite variance range.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/schedule/noise_schedule.hpp"

namespace progdiff::schedule {

class GaussianPosterior {
 public:
  /// alpha_bars[k] of the chain's steps k = 0 .. K - 1, strictly decreasing, in (0, 1); K >= 2.
  explicit GaussianPosterior(std::vector<double> alpha_bars) : alpha_bar_(std::move(alpha_bars)) {
    const std::size_t n = alpha_bar_.size();
    require(n >= 2,
            "GaussianPosterior: a chain needs at least 2 steps (the decoder's variance range reads step 1), got " +
                std::to_string(n));
    for (std::size_t k = 0; k < n; ++k) {
      require(alpha_bar_[k] > 0 && alpha_bar_[k] < 1, "GaussianPosterior: alpha-bar of step " + std::to_string(k) +
                                                          " is " + std::to_string(alpha_bar_[k]) + ", outside (0, 1)");
      if (k > 0)
        require(alpha_bar_[k] < alpha_bar_[k - 1], "GaussianPosterior: alpha-bar must decrease, but step " +
                                                       std::to_string(k) + " has " + std::to_string(alpha_bar_[k]) +
                                                       " after " + std::to_string(alpha_bar_[k - 1]));
    }
    beta_.resize(n);
    log_beta_.resize(n);
    variance_.resize(n);
    log_variance_.resize(n);
    c1_.resize(n);
    c2_.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
      const double a = alpha_bar_[k], prev = k == 0 ? 1.0 : alpha_bar_[k - 1];
      const double beta = 1.0 - a / prev;
      beta_[k] = beta;
      log_beta_[k] = std::log(beta);
      variance_[k] = beta * (1.0 - prev) / (1.0 - a);
      c1_[k] = std::sqrt(prev) * beta / (1.0 - a);
      c2_[k] = std::sqrt(1.0 - beta) * (1.0 - prev) / (1.0 - a);
    }
    for (std::size_t k = 0; k < n; ++k) log_variance_[k] = std::log(variance_[k == 0 ? 1 : k]);
  }

  /// Every step of a schedule.
  template <NoiseSchedule S>
  static GaussianPosterior of(const S& schedule) {
    std::vector<double> a(static_cast<std::size_t>(schedule.size()));
    for (std::int64_t i = 0; i < schedule.size(); ++i) a[static_cast<std::size_t>(i)] = schedule.alpha_bar(i);
    return GaussianPosterior(std::move(a));
  }

  /// The chain of the kept timesteps (any order) of a trained alpha-bar table: IDDPM's respacing.
  static GaussianPosterior respaced(std::span<const double> alphas_cumprod, std::span<const std::int64_t> kept) {
    std::vector<std::int64_t> sorted(kept.begin(), kept.end());
    std::sort(sorted.begin(), sorted.end());
    std::vector<double> a;
    for (std::int64_t t : sorted) {
      require(t >= 0 && t < static_cast<std::int64_t>(alphas_cumprod.size()),
              "GaussianPosterior::respaced: timestep " + std::to_string(t) + " outside [0, " +
                  std::to_string(alphas_cumprod.size()) + ")");
      a.push_back(alphas_cumprod[static_cast<std::size_t>(t)]);
    }
    return GaussianPosterior(std::move(a));
  }

  std::int64_t size() const { return static_cast<std::int64_t>(alpha_bar_.size()); }
  double alpha_bar(std::int64_t k) const { return alpha_bar_[at(k)]; }
  double beta(std::int64_t k) const { return beta_[at(k)]; }
  double log_beta(std::int64_t k) const { return log_beta_[at(k)]; }
  /// beta~_k (0 at k = 0).
  double variance(std::int64_t k) const { return variance_[at(k)]; }
  /// log beta~_k, with log beta~_1 at k = 0.
  double log_variance_clipped(std::int64_t k) const { return log_variance_[at(k)]; }
  double mean_x0(std::int64_t k) const { return c1_[at(k)]; }
  double mean_xt(std::int64_t k) const { return c2_[at(k)]; }
  /// log Sigma_k for the network's variance output v (learned range).
  double learned_log_variance(std::int64_t k, double v) const {
    const double f = (v + 1.0) / 2.0;
    return f * log_beta_[at(k)] + (1.0 - f) * log_variance_[at(k)];
  }

 private:
  std::size_t at(std::int64_t k) const {
    if (k < 0 || k >= size())
      throw ConfigError("GaussianPosterior: step " + std::to_string(k) + " outside the chain's [0, " +
                        std::to_string(size()) + ")");
    return static_cast<std::size_t>(k);
  }
  std::vector<double> alpha_bar_, beta_, log_beta_, variance_, log_variance_, c1_, c2_;
};

}  // namespace progdiff::schedule

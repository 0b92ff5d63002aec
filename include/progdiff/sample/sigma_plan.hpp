#pragma once
// Sigma ladders for the ODE samplers of Karras et al. 2022 ("Elucidating the Design Space of
// Diffusion-Based Generative Models", EDM), which integrate dx/dsigma = (x - D(x; sigma)) / sigma
// on x = x0 + sigma eps. A plan holds S descending sigmas and a final 0, the model timestep of
// each, and the preconditioning of Table 1 that turns a network output F into D:
//   model input  c_in x,  D = c_skip x + c_out F.
// Two parameterizations:
//   VariancePreserving  a discrete VP model (DDPM-trained), as diffusers' Euler/Heun schedulers
//                       run it: c_in = 1 / sqrt(sigma^2 + 1), timestep = the training timestep
//                       of sigma (fractional), and by prediction type
//                       epsilon: c_skip = 1, c_out = -sigma; sample: 0, 1;
//                       v: c_skip = 1 / (sigma^2 + 1), c_out = -sigma / sqrt(sigma^2 + 1)
//   Edm                 Table 1's EDM column with sigma_data: c_in = 1 / sqrt(sigma^2 + sd^2),
//                       c_skip = sd^2 / (sigma^2 + sd^2), c_out = +-sigma sd / sqrt(sigma^2 + sd^2)
//                       (+ for epsilon, - for v, as diffusers' EDMEulerScheduler), timestep
//                       c_noise = ln(sigma) / 4; "sample" means F = D.
//   Preconditioned      a model that applies Table 1 itself and outputs D (model::EdmPreconditioned):
//                       input x as is, D = output, timestep = the EDM grid's timestep of sigma
//                       (schedule::EdmSigma, the map the model was trained and is routed by).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/sample/sampler.hpp"
#include "progdiff/schedule/edm_sigma.hpp"

namespace progdiff::sample {

enum class Parameterization { VariancePreserving, Edm, Preconditioned };

/// c_in, c_skip and c_out of Karras et al. Table 1 at one sigma.
struct Preconditioning {
  double c_in = 1.0, c_skip = 1.0, c_out = 0.0;
  LinearPrediction x0() const { return {c_skip, c_out}; }
};

class SigmaPlan {
 public:
  SigmaPlan(std::vector<double> sigmas, std::vector<double> timesteps, Parameterization param, double sigma_data = 0.5)
      : sigmas_(std::move(sigmas)), timesteps_(std::move(timesteps)), param_(param), sigma_data_(sigma_data) {
    require(!timesteps_.empty() && sigmas_.size() == timesteps_.size(),
            "SigmaPlan: needs one timestep per sigma and at least one, got " + std::to_string(sigmas_.size()) +
                " sigmas and " + std::to_string(timesteps_.size()) + " timesteps");
    for (std::size_t i = 0; i < sigmas_.size(); ++i)
      require(sigmas_[i] > 0 && (i == 0 || sigmas_[i] < sigmas_[i - 1]),
              "SigmaPlan: sigmas must be positive and strictly descending, sigma[" + std::to_string(i) +
                  "] = " + std::to_string(sigmas_[i]));
    require(sigma_data > 0, "SigmaPlan: sigma_data must be > 0");
    sigmas_.push_back(0.0);
  }

  /// diffusers' Euler/Heun ladder ("linspace"): timesteps linspace(T - 1, 0, S) and sigmas
  /// interpolated linearly in t from sqrt((1 - a) / a).
  static SigmaPlan linspace(const std::vector<double>& alphas_cumprod, std::int64_t steps) {
    const auto train = train_sigmas(alphas_cumprod, "SigmaPlan::linspace");
    require(steps >= 1, "SigmaPlan::linspace: steps must be >= 1");
    const double last = static_cast<double>(train.size() - 1);
    std::vector<double> t, s;
    for (std::int64_t k = 0; k < steps; ++k) {
      // numpy.linspace(0, T - 1, S) read backwards
      const std::int64_t j = steps - 1 - k;
      const double tj = steps == 1 ? 0.0 : (j == steps - 1 ? last : static_cast<double>(j) * (last / (steps - 1)));
      t.push_back(tj);
      s.push_back(interpolate(train, tj));
    }
    return SigmaPlan(std::move(s), std::move(t), Parameterization::VariancePreserving);
  }

  /// Karras et al. eq. 5 between the trained sigma range, timesteps by log-sigma
  /// interpolation (diffusers' use_karras_sigmas).
  static SigmaPlan karras(const std::vector<double>& alphas_cumprod, std::int64_t steps, double rho = 7.0) {
    const auto train = train_sigmas(alphas_cumprod, "SigmaPlan::karras");
    auto s = karras_sigmas(steps, train.front(), train.back(), rho);
    std::vector<double> t;
    for (double v : s) t.push_back(timestep_of_sigma(train, v));
    return SigmaPlan(std::move(s), std::move(t), Parameterization::VariancePreserving);
  }

  /// The EDM ladder (eq. 5) with EDM preconditioning and c_noise timesteps.
  static SigmaPlan edm(std::int64_t steps, double sigma_min = 0.002, double sigma_max = 80.0, double rho = 7.0,
                       double sigma_data = 0.5) {
    auto s = karras_sigmas(steps, sigma_min, sigma_max, rho);
    std::vector<double> t;
    for (double v : s) t.push_back(0.25 * std::log(v));
    return SigmaPlan(std::move(s), std::move(t), Parameterization::Edm, sigma_data);
  }

  /// The EDM ladder (eq. 5) for a model that outputs D itself (model::EdmPreconditioned):
  /// timesteps are `grid`'s timesteps of the sigmas; the ladder's range defaults to the grid's.
  static SigmaPlan edm_preconditioned(std::int64_t steps, const schedule::EdmSigma& grid, double rho = 7.0,
                                      double sigma_min = 0.0, double sigma_max = 0.0) {
    auto s = karras_sigmas(steps, sigma_min > 0 ? sigma_min : grid.sigma_min(),
                           sigma_max > 0 ? sigma_max : grid.sigma_max(), rho);
    std::vector<double> t;
    for (double v : s) t.push_back(grid.timestep_of(v));
    SigmaPlan plan(std::move(s), std::move(t), Parameterization::Preconditioned);
    plan.grid_ = grid;
    return plan;
  }

  /// The model timestep of any sigma (an off-ladder sigma such as a churned one): ln(sigma) / 4
  /// for Edm, the grid's timestep for edm_preconditioned plans; ConfigError for the others.
  double timestep_at(double sigma) const {
    if (param_ == Parameterization::Edm) return 0.25 * std::log(sigma);
    require(param_ == Parameterization::Preconditioned && grid_.has_value(),
            "SigmaPlan::timestep_at: only SigmaPlan::edm and SigmaPlan::edm_preconditioned plans map any sigma to "
            "a model timestep");
    return grid_->timestep_of(sigma);
  }

  /// sigma_i = (sigma_max^(1/rho) + i / (S - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.
  static std::vector<double> karras_sigmas(std::int64_t steps, double sigma_min, double sigma_max, double rho) {
    require(steps >= 2, "SigmaPlan: a Karras ladder needs steps >= 2, got " + std::to_string(steps));
    require(sigma_min > 0 && sigma_max > sigma_min && rho > 0,
            "SigmaPlan: needs 0 < sigma_min < sigma_max and rho > 0, got sigma_min = " + std::to_string(sigma_min) +
                ", sigma_max = " + std::to_string(sigma_max) + ", rho = " + std::to_string(rho));
    const double lo = std::pow(sigma_min, 1.0 / rho), hi = std::pow(sigma_max, 1.0 / rho);
    std::vector<double> s;
    for (std::int64_t i = 0; i < steps; ++i) {
      const double ramp = i == steps - 1 ? 1.0 : static_cast<double>(i) * (1.0 / static_cast<double>(steps - 1));
      s.push_back(std::pow(hi + ramp * (lo - hi), rho));
    }
    return s;
  }

  std::int64_t steps() const { return static_cast<std::int64_t>(timesteps_.size()); }
  /// sigma of step i; 0 at i = steps().
  double sigma(std::int64_t i) const { return sigmas_.at(static_cast<std::size_t>(i)); }
  double timestep(std::int64_t i) const { return timesteps_.at(static_cast<std::size_t>(i)); }
  const std::vector<double>& sigmas() const { return sigmas_; }
  const std::vector<double>& timesteps() const { return timesteps_; }
  Parameterization parameterization() const { return param_; }
  double sigma_data() const { return sigma_data_; }

  /// x_T = initial_scale * N(0, I): sqrt(sigma_max^2 + 1) for a VP model (the VP prior
  /// N(0, I) seen on x = x0 + sigma eps), sigma_max for EDM (Algorithm 1, line 1).
  double initial_scale() const {
    const double s = sigmas_.front();
    return param_ == Parameterization::VariancePreserving ? std::sqrt(s * s + 1.0) : s;
  }

  Preconditioning preconditioning(double sigma, PredictionType p) const {
    Preconditioning c;
    if (param_ == Parameterization::Preconditioned) {  // the output is D whatever p says (c_in is asked with any p)
      c.c_in = 1.0, c.c_skip = 0.0, c.c_out = 1.0;
      return c;
    }
    if (param_ == Parameterization::VariancePreserving) {
      const double s2 = sigma * sigma + 1.0;
      c.c_in = 1.0 / std::sqrt(s2);
      if (p == PredictionType::Epsilon) c.c_skip = 1.0, c.c_out = -sigma;
      if (p == PredictionType::Sample) c.c_skip = 0.0, c.c_out = 1.0;
      if (p == PredictionType::VPrediction) c.c_skip = 1.0 / s2, c.c_out = -sigma / std::sqrt(s2);
    } else {
      const double d2 = sigma_data_ * sigma_data_, s2 = sigma * sigma + d2;
      c.c_in = 1.0 / std::sqrt(s2);
      if (p == PredictionType::Sample) {
        c.c_skip = 0.0, c.c_out = 1.0;
      } else {
        c.c_skip = d2 / s2;
        c.c_out = (p == PredictionType::Epsilon ? 1.0 : -1.0) * sigma * sigma_data_ / std::sqrt(s2);
      }
    }
    return c;
  }

 private:
  static std::vector<double> train_sigmas(const std::vector<double>& a, const char* who) {
    require(a.size() >= 2, std::string(who) + ": alphas_cumprod needs at least 2 entries");
    std::vector<double> s;
    for (std::size_t i = 0; i < a.size(); ++i) {
      require(a[i] > 0 && a[i] < 1 && (i == 0 || a[i] < a[i - 1]),
              std::string(who) + ": alphas_cumprod must lie in (0, 1) and decrease, entry " + std::to_string(i));
      s.push_back(std::sqrt((1.0 - a[i]) / a[i]));
    }
    return s;
  }
  /// numpy.interp(t, arange(T), sigmas)
  static double interpolate(const std::vector<double>& s, double t) {
    const auto last = static_cast<std::int64_t>(s.size()) - 1;
    const auto i = std::clamp(static_cast<std::int64_t>(std::floor(t)), std::int64_t{0}, last - 1);
    const double f = t - static_cast<double>(i);
    return s[static_cast<std::size_t>(i)] + f * (s[static_cast<std::size_t>(i) + 1] - s[static_cast<std::size_t>(i)]);
  }
  /// The fractional training timestep of `sigma`, linear in log-sigma between grid points.
  static double timestep_of_sigma(const std::vector<double>& s, double sigma) {
    const double ls = std::log(std::max(sigma, 1e-10));
    std::size_t lo = 0;
    for (std::size_t i = 0; i + 1 < s.size(); ++i)
      if (std::log(s[i]) <= ls) lo = i;
    const double a = std::log(s[lo]), b = std::log(s[lo + 1]);
    const double w = std::clamp((a - ls) / (a - b), 0.0, 1.0);
    return (1.0 - w) * static_cast<double>(lo) + w * static_cast<double>(lo + 1);
  }

  std::vector<double> sigmas_, timesteps_;
  Parameterization param_;
  double sigma_data_;
  std::optional<schedule::EdmSigma> grid_;
};

}  // namespace progdiff::sample

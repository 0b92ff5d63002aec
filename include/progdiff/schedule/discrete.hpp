#pragma once
// Discrete DDPM-family schedules with the kind and the step count T as template parameters:
// Linear<1000> (DDPM), ScaledLinear<1000> (LDM), Cosine<4000> (IDDPM).
#include <cmath>
#include <cstdint>

#include "progdiff/schedule/betas.hpp"
#include "progdiff/schedule/tabulated.hpp"

namespace progdiff::schedule {

/// Fills a Tabulated grid from betas: alpha-bar_i = prod_{j <= i} (1 - beta_j), time t_i = (i + 1) / T,
/// so index T - 1 is t = 1 (pure noise end) and the DDPM step number is i + 1.
class DiscreteBase : public Tabulated {
 protected:
  void build(const std::vector<double>& betas) {
    clear();
    const double n = static_cast<double>(betas.size());
    double log_alpha_bar = 0.0;
    for (std::size_t i = 0; i < betas.size(); ++i) {
      log_alpha_bar += std::log1p(-betas[i]);
      push_vp(static_cast<double>(i + 1) / n, log_alpha_bar);
    }
  }
};

/// A discrete schedule of `Kind` over `T` training timesteps (T >= 1).
template <BetaKind Kind, std::int64_t T>
class Discrete : public DiscreteBase {
  static_assert(T >= 1, "progdiff: a discrete schedule needs at least one timestep (T >= 1)");

 public:
  static constexpr BetaKind kind = Kind;
  static constexpr std::int64_t steps = T;

  explicit Discrete(BetaSettings settings = default_settings()) : settings_(settings) {
    build(make_betas(Kind, T, settings_));
  }
  Discrete(double beta_start, double beta_end) : Discrete(with_range(beta_start, beta_end)) {}

  /// DDPM's range for linear and cosine; LDM's (0.00085, 0.012) for scaled_linear.
  static BetaSettings default_settings() {
    BetaSettings s;
    if (Kind == BetaKind::ScaledLinear) s.beta_start = 0.00085, s.beta_end = 0.012;
    return s;
  }
  const BetaSettings& settings() const { return settings_; }

 private:
  static BetaSettings with_range(double beta_start, double beta_end) {
    BetaSettings s = default_settings();
    s.beta_start = beta_start;
    s.beta_end = beta_end;
    return s;
  }
  BetaSettings settings_;
};

template <std::int64_t T>
using Linear = Discrete<BetaKind::Linear, T>;
template <std::int64_t T>
using ScaledLinear = Discrete<BetaKind::ScaledLinear, T>;
template <std::int64_t T>
using Cosine = Discrete<BetaKind::Cosine, T>;

}  // namespace progdiff::schedule

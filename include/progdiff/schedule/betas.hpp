#pragma once
// Beta sequences of the discrete schedules, in double precision, as diffusers defines them:
//   linear         DDPM (Ho et al. 2020): betas evenly spaced in [beta_start, beta_end]
//   scaled_linear  LDM (Rombach et al. 2022): sqrt(beta) evenly spaced, then squared
//   cosine         IDDPM (Nichol & Dhariwal 2021, eq. 17): alpha-bar(t) = f(t) / f(0),
//                  f(t) = cos^2((t/T + s) / (1 + s) * pi/2), s = 0.008, each beta clipped at 0.999
//                  (diffusers' "squaredcos_cap_v2")
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::schedule {

enum class BetaKind { Linear, ScaledLinear, Cosine };

inline const char* beta_kind_name(BetaKind kind) {
  switch (kind) {
    case BetaKind::Linear:
      return "linear";
    case BetaKind::ScaledLinear:
      return "scaled_linear";
    case BetaKind::Cosine:
      return "squaredcos_cap_v2";
  }
  return "?";
}

struct BetaSettings {
  double beta_start = 1e-4;
  double beta_end = 0.02;
  double cosine_offset = 0.008;  // IDDPM's s
  double max_beta = 0.999;       // IDDPM's clip, avoids a singular last step
};

/// The T betas of `kind`; throws ConfigError on settings that give no valid beta in (0, 1).
inline std::vector<double> make_betas(BetaKind kind, std::int64_t steps, const BetaSettings& cfg = {}) {
  require(steps >= 1, "schedule: num_train_timesteps must be >= 1, got " + std::to_string(steps));
  std::vector<double> betas(static_cast<std::size_t>(steps));
  // numpy.linspace: start + i * step, with the last point exactly `stop`
  auto linspace = [steps](double start, double stop, std::int64_t i) {
    if (steps == 1) return start;
    return i == steps - 1 ? stop : start + static_cast<double>(i) * ((stop - start) / static_cast<double>(steps - 1));
  };
  switch (kind) {
    case BetaKind::Linear:
      for (std::int64_t i = 0; i < steps; ++i) betas[i] = linspace(cfg.beta_start, cfg.beta_end, i);
      break;
    case BetaKind::ScaledLinear:
      require(cfg.beta_start >= 0 && cfg.beta_end >= 0, "schedule: scaled_linear needs beta_start, beta_end >= 0");
      for (std::int64_t i = 0; i < steps; ++i) {
        const double r = linspace(std::sqrt(cfg.beta_start), std::sqrt(cfg.beta_end), i);
        betas[i] = r * r;
      }
      break;
    case BetaKind::Cosine: {
      require(cfg.cosine_offset >= 0, "schedule: cosine offset s must be >= 0");
      auto f = [&](double t) {
        const double c = std::cos((t + cfg.cosine_offset) / (1.0 + cfg.cosine_offset) * std::numbers::pi / 2);
        return c * c;
      };
      const double n = static_cast<double>(steps);
      for (std::int64_t i = 0; i < steps; ++i)
        betas[i] = std::min(1.0 - f(static_cast<double>(i + 1) / n) / f(static_cast<double>(i) / n), cfg.max_beta);
      break;
    }
  }
  for (std::int64_t i = 0; i < steps; ++i)
    require(betas[i] > 0 && betas[i] < 1, std::string("schedule: ") + beta_kind_name(kind) + " beta[" +
                                              std::to_string(i) + "] = " + std::to_string(betas[i]) +
                                              " is outside (0, 1); check beta_start / beta_end");
  return betas;
}

}  // namespace progdiff::schedule

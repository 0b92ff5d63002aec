#pragma once
// Per-sample weights of the diffusion training loss, for each prediction type.
//
// Every weighting is defined on the x0 error and carried to the other targets by the exact
// identities of the variance-preserving kernel x_t = sqrt(a) x0 + sqrt(1 - a) eps, SNR = a / (1 - a):
//   ||eps_hat - eps||^2 = SNR ||x0_hat - x0||^2,   ||v_hat - v||^2 = (1 + SNR) ||x0_hat - x0||^2,
// so a weight w_x0 on the x0 error is w_x0 / SNR on the epsilon error and w_x0 / (SNR + 1) on the v error.
//   none         w = 1 on the chosen target's own error
//   min-SNR-g    (Hang et al. 2023, eq. 7 and sec. 3.4) w_x0 = min(SNR, gamma): epsilon min(SNR, g) / SNR,
//                x0 min(SNR, g), v min(SNR, g) / (SNR + 1)
//   EDM          (Karras et al. 2022, eq. 8 and table 1) lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 on the
//                denoiser (x0) error, sigma^2 = 1 / SNR, sd = sigma_data: w_x0 = SNR + 1 / sd^2, epsilon
//                1 + sigma^2 / sd^2, v (SNR + 1 / sd^2) / (SNR + 1). EDM's preconditioned network makes this
//                weight times c_out^2 equal one; here it weights a plain network's error in the same way.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/schedule/prediction_type.hpp"

namespace progdiff::loss {

enum class LossWeighting { None, MinSnr, Edm };

struct WeightingConfig {
  LossWeighting kind = LossWeighting::None;
  double gamma = 5.0;       // min-SNR-gamma; Hang et al. recommend 5
  double sigma_data = 0.5;  // EDM; Karras et al. use 0.5 for images scaled to [-1, 1]
};

inline const char* weighting_name(LossWeighting w) {
  switch (w) {
    case LossWeighting::None:
      return "none";
    case LossWeighting::MinSnr:
      return "min_snr";
    case LossWeighting::Edm:
      return "edm";
  }
  return "?";
}

/// The loss weight of one sample with alpha-bar `alpha_bar` under `prediction` and `config`.
inline double loss_weight(double alpha_bar, schedule::PredictionType prediction, const WeightingConfig& config) {
  if (!(alpha_bar > 0.0 && alpha_bar < 1.0))
    throw ConfigError("loss_weight: alpha-bar " + std::to_string(alpha_bar) + " is outside (0, 1)");
  if (config.kind == LossWeighting::None) return 1.0;
  const double snr = alpha_bar / (1.0 - alpha_bar);
  double w_x0 = 0.0;
  if (config.kind == LossWeighting::MinSnr) {
    require(config.gamma > 0.0, "loss_weight: min-SNR gamma must be > 0, got " + std::to_string(config.gamma));
    w_x0 = std::min(snr, config.gamma);
  } else {
    require(config.sigma_data > 0.0,
            "loss_weight: EDM sigma_data must be > 0, got " + std::to_string(config.sigma_data));
    w_x0 = snr + 1.0 / (config.sigma_data * config.sigma_data);
  }
  switch (prediction) {
    case schedule::PredictionType::Epsilon:
      return w_x0 / snr;
    case schedule::PredictionType::Sample:
      return w_x0;
    case schedule::PredictionType::VPrediction:
      return w_x0 / (snr + 1.0);
  }
  throw ConfigError("loss_weight: unknown prediction type");
}

}  // namespace progdiff::loss

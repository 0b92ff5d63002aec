#pragma once
// Converting a model output to x0 and epsilon under the variance-preserving kernel
// x_t = sqrt(a) x0 + sqrt(1 - a) eps, a = alpha-bar_t:
//   epsilon  (DDPM, Ho et al. 2020, eq. 15)     x0 = (x_t - sqrt(1 - a) eps) / sqrt(a)
//   sample   (x0 prediction)                    eps = (x_t - sqrt(a) x0) / sqrt(1 - a)
//   v        (Salimans & Ho 2022, sec. 4)      v = sqrt(a) eps - sqrt(1 - a) x0, so
//                                               x0 = sqrt(a) x_t - sqrt(1 - a) v, eps = sqrt(1 - a) x_t + sqrt(a) v
#include <cmath>

#include "progdiff/sample/sampler.hpp"

namespace progdiff::sample {

struct VpPrediction {
  LinearPrediction x0, eps;
};

inline VpPrediction vp_prediction(double alpha_bar, PredictionType p) {
  const double sa = std::sqrt(alpha_bar), sb = std::sqrt(1.0 - alpha_bar);
  switch (p) {
    case PredictionType::Epsilon:
      return {{1.0 / sa, -sb / sa}, {0.0, 1.0}};
    case PredictionType::Sample:
      return {{0.0, 1.0}, {1.0 / sb, -sa / sb}};
    case PredictionType::VPrediction:
      return {{sa, -sb}, {sb, sa}};
  }
  throw ConfigError("sample: unknown prediction type");
}

}  // namespace progdiff::sample

#pragma once
// AdamW (Loshchilov & Hutter 2019) for one parameter element: decoupled weight decay,
// bias-corrected moments, as torch.optim.AdamW computes it.
#include <cmath>

#include "progdiff/backend/math/host_device.hpp"

namespace progdiff::math {

struct AdamHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

/// The bias corrections 1 - beta1^step and 1 - beta2^step, the same for every element of a step.
struct AdamBiasCorrection {
  double bc1, bc2;
};

/// `step` counts from 1.
PROGDIFF_INLINE AdamBiasCorrection adam_bias_correction(const AdamHyper& h, long long step) {
  return {1.0 - pow(h.beta1, static_cast<double>(step)), 1.0 - pow(h.beta2, static_cast<double>(step))};
}

/// Updates param, m, v in place with the step's bias corrections computed once by the caller.
template <class T>
PROGDIFF_INLINE void adamw_update(T& param, T grad, T& m, T& v, const AdamHyper& h, const AdamBiasCorrection& c) {
  const double bc1 = c.bc1, bc2 = c.bc2;
  double p = static_cast<double>(param);
  p *= 1.0 - h.lr * h.weight_decay;
  const double mm = h.beta1 * static_cast<double>(m) + (1.0 - h.beta1) * static_cast<double>(grad);
  const double vv = h.beta2 * static_cast<double>(v) + (1.0 - h.beta2) * static_cast<double>(grad) * grad;
  m = static_cast<T>(mm);
  v = static_cast<T>(vv);
  const double denom = sqrt(vv / bc2) + h.eps;
  param = static_cast<T>(p - h.lr * (mm / bc1) / denom);
}

/// `step` counts from 1. Updates param, m, v in place.
template <class T>
PROGDIFF_INLINE void adamw_update(T& param, T grad, T& m, T& v, const AdamHyper& h, long long step) {
  adamw_update(param, grad, m, v, h, adam_bias_correction(h, step));
}

}  // namespace progdiff::math

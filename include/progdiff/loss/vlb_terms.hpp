#pragma once
// The terms of the variational bound L_vlb = L_0 + L_1 + ... + L_{T-1} + L_T (DDPM eq. 5,
// IDDPM eqs. 4-6), computed on the host in double for one sample of D values:
//   L_{k}, k > 0: KL(q(x_{k-1} | x_k, x0) || N(mu_theta, Sigma_theta)), both Gaussians diagonal
//   L_0:          -log p(x0 | x_1), DDPM's discretized Gaussian decoder: the mass of
//                 N(mu_theta, Sigma_theta) on x0's 8-bit bin [x0 - 1/255, x0 + 1/255], the
//                 edge bins open towards -inf and +inf, with the tanh approximation of the
//                 normal CDF that DDPM and IDDPM use (so bits/dim compare with theirs)
// each averaged over the D dimensions and divided by ln 2: bits per dimension. The model's
// mean comes from its prediction through x0_hat (optionally clipped to [-1, 1], as IDDPM's
// evaluation does) and the posterior mean; its variance from the learned range.
//
// Why the host: the back-end concept has no log, exp or tanh kernels, and these terms cost
// O(D) per sample, nothing beside the network's forward; a device back end copies the output down
// and the gradient up once per batch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <vector>

#include "progdiff/schedule/gaussian_posterior.hpp"

namespace progdiff::loss {

/// A value and its derivatives with respect to the second Gaussian's mean and log-variance
/// (or the decoder's mean and log-scale).
struct TermWithGradient {
  double value = 0.0, d_mean = 0.0, d_log = 0.0;
};

/// KL(N(m1, e^lv1) || N(m2, e^lv2)) per dimension, in nats; derivatives in m2 and lv2.
inline TermWithGradient normal_kl(double m1, double lv1, double m2, double lv2) {
  const double diff = m1 - m2, inv2 = std::exp(-lv2), ratio = std::exp(lv1 - lv2);
  return {0.5 * (-1.0 + lv2 - lv1 + ratio + diff * diff * inv2), -diff * inv2,
          0.5 * (1.0 - ratio - diff * diff * inv2)};
}

/// The tanh approximation of the standard normal CDF (Page 1977), as DDPM's decoder uses it.
inline double approx_standard_normal_cdf(double x) {
  return 0.5 * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

namespace detail {
inline double approx_standard_normal_pdf(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi), th = std::tanh(k * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * x * x);
}
}  // namespace detail

/// log p(x) of the discretized Gaussian decoder for x in [-1, 1] on the 8-bit grid, mean `mean`,
/// standard deviation e^log_scale; probabilities are floored at 1e-12 (no gradient there).
inline TermWithGradient discretized_gaussian_log_likelihood(double x, double mean, double log_scale) {
  constexpr double kHalfBin = 1.0 / 255.0, kFloor = 1e-12;
  const double inv = std::exp(-log_scale), centred = x - mean;
  const double up = inv * (centred + kHalfBin), down = inv * (centred - kHalfBin);
  // d up / d mean = -inv, d up / d log_scale = -up (and the same for down)
  const double cdf_up = approx_standard_normal_cdf(up), cdf_down = approx_standard_normal_cdf(down);
  const double pdf_up = detail::approx_standard_normal_pdf(up), pdf_down = detail::approx_standard_normal_pdf(down);
  TermWithGradient r;
  if (x < -0.999) {  // the lowest bin reaches -inf
    r.value = std::log(std::max(cdf_up, kFloor));
    if (cdf_up > kFloor) {
      r.d_mean = pdf_up * -inv / cdf_up;
      r.d_log = pdf_up * -up / cdf_up;
    }
  } else if (x > 0.999) {  // the highest bin reaches +inf
    const double tail = 1.0 - cdf_down;
    r.value = std::log(std::max(tail, kFloor));
    if (tail > kFloor) {
      r.d_mean = -pdf_down * -inv / tail;
      r.d_log = -pdf_down * -down / tail;
    }
  } else {
    const double mass = cdf_up - cdf_down;
    r.value = std::log(std::max(mass, kFloor));
    if (mass > kFloor) {
      r.d_mean = (pdf_up * -inv - pdf_down * -inv) / mass;
      r.d_log = (pdf_up * -up - pdf_down * -down) / mass;
    }
  }
  return r;
}

/// The network output of one sample, as x0_hat = sample * x_t + output * prediction (a
/// prediction type's linear map, sample/prediction.hpp) and the variance head v.
struct VlbSampleInput {
  std::span<const double> x0, x_t, prediction, v;  // D values each
  std::int64_t step = 0;                           // k on the chain
  double x0_from_sample = 0.0, x0_from_output = 1.0;
  bool clip_x0 = false;  // clip x0_hat to [-1, 1] (IDDPM's evaluation)
};

/// L_k of one sample in bits per dimension; with gradients, dL_k / d prediction and dL_k / d v
/// (D values each; clipped x0_hat passes no gradient where it is clipped, as torch.clamp).
inline double vlb_term(const schedule::GaussianPosterior& chain, const VlbSampleInput& in,
                       std::vector<double>* d_prediction = nullptr, std::vector<double>* d_v = nullptr) {
  const std::size_t d = in.x0.size();
  const std::int64_t k = in.step;
  const double c1 = chain.mean_x0(k), c2 = chain.mean_xt(k);
  const double min_log = chain.log_variance_clipped(k), max_log = chain.log_beta(k);
  const double scale = 1.0 / (static_cast<double>(d) * std::numbers::ln2);
  if (d_prediction) d_prediction->assign(d, 0.0);
  if (d_v) d_v->assign(d, 0.0);
  double total = 0.0;
  for (std::size_t j = 0; j < d; ++j) {
    double x0_hat = in.x0_from_sample * in.x_t[j] + in.x0_from_output * in.prediction[j];
    double d_x0_hat = in.x0_from_output;  // d x0_hat / d prediction
    if (in.clip_x0 && (x0_hat < -1.0 || x0_hat > 1.0)) {
      x0_hat = std::clamp(x0_hat, -1.0, 1.0);
      d_x0_hat = 0.0;
    }
    const double f = (in.v[j] + 1.0) / 2.0;
    const double log_var = f * max_log + (1.0 - f) * min_log, d_log_var = 0.5 * (max_log - min_log);
    const double mean = c1 * x0_hat + c2 * in.x_t[j];
    double dm = 0.0, dl = 0.0;  // d term / d mean, d term / d log_var
    if (k == 0) {
      const TermWithGradient ll = discretized_gaussian_log_likelihood(in.x0[j], mean, 0.5 * log_var);
      total -= ll.value;
      dm = -ll.d_mean;
      dl = -0.5 * ll.d_log;
    } else {
      const TermWithGradient kl = normal_kl(c1 * in.x0[j] + c2 * in.x_t[j], min_log, mean, log_var);
      total += kl.value;
      dm = kl.d_mean;
      dl = kl.d_log;
    }
    if (d_prediction) (*d_prediction)[j] = scale * dm * c1 * d_x0_hat;
    if (d_v) (*d_v)[j] = scale * dl * d_log_var;
  }
  return total * scale;
}

/// L_T = KL(q(x_T | x0) || N(0, I)) in bits per dimension; a_T the chain's last alpha-bar.
inline double prior_term(std::span<const double> x0, double alpha_bar_last) {
  const double log_var = std::log(1.0 - alpha_bar_last), s = std::sqrt(alpha_bar_last);
  double total = 0.0;
  for (double x : x0) total += normal_kl(s * x, log_var, 0.0, 0.0).value;
  return total / (static_cast<double>(x0.size()) * std::numbers::ln2);
}

}  // namespace progdiff::loss

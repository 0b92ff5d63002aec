#pragma once
// IDDPM's hybrid objective (Nichol & Dhariwal 2021, sec. 3.1, eq. 16) for a network with 2C
// outputs, the prediction (epsilon, x0 or v) first and the variance interpolation v second:
//   L_hybrid = L_simple + lambda L_vlb,  lambda = 0.001
//   L_simple = mean_j (prediction_j - target_j)^2              (the existing MSE, optionally weighted)
//   L_vlb    ~ T L_k with k the sample's (uniform or importance-sampled) step, L_k from
//              loss/vlb_terms.hpp in bits per dimension
// Inside L_vlb the mean is held fixed (stop-gradient): L_vlb trains the variance head only and
// L_simple the mean head, as the paper prescribes. With vlb_only the objective is L_vlb alone
// (T L_k, the paper's L_vlb runs, usually with importance-sampled steps) and its gradient reaches
// the mean too. Per batch:
//   per_sample_i = s_i L_simple,i + lambda T L_k,i   (vlb_only: T L_k,i)
//   L = (1/N) sum_i w_i per_sample_i
// with s_i the weighting of the simple term (loss_weighting.hpp) and w_i the timestep sampler's
// importance weight. T is the chain's length (IDDPM scales its per-step term by T / 1000, the same
// lambda T). Computed on the host in double (see vlb_terms.hpp for why).
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/loss/vlb_terms.hpp"
#include "progdiff/schedule/gaussian_posterior.hpp"
#include "progdiff/schedule/prediction_type.hpp"

namespace progdiff::loss {

struct HybridConfig {
  double lambda = 0.001;  // weight of L_vlb beside L_simple (IDDPM eq. 16)
  bool vlb_only = false;  // train on L_vlb alone, without L_simple and without the stop-gradient
};

/// The loss, its gradient with respect to the whole 2C-channel output, and the parts per sample.
template <class T, class B>
struct HybridLossResult : LossResult<T, B> {
  std::vector<double> mse;  // [N] L_simple of each sample (unweighted)
  std::vector<double> vlb;  // [N] L_k of each sample, bits per dimension
};

/// x0_hat = sample * x_t + output * prediction for a prediction type at alpha-bar a.
struct X0Map {
  double sample = 0.0, output = 1.0;
};
inline X0Map x0_map(double a, schedule::PredictionType p) {
  const double sa = std::sqrt(a), sb = std::sqrt(1.0 - a);
  switch (p) {
    case schedule::PredictionType::Epsilon:
      return {1.0 / sa, -sb / sa};
    case schedule::PredictionType::Sample:
      return {0.0, 1.0};
    case schedule::PredictionType::VPrediction:
      return {sa, -sb};
  }
  throw ConfigError("x0_map: unknown prediction type");
}

namespace detail {
inline void check_two_headed(const Shape& output, const Shape& x0, const char* who) {
  require<ShapeError>(x0.rank() >= 2 && x0[0] >= 1,
                      std::string(who) + ": x0 has shape " + x0.str() + ", expected [N, C, ...]");
  Shape want = x0;
  want[1] = 2 * x0[1];
  require<ShapeError>(output == want, std::string(who) + ": the model output has shape " + output.str() +
                                          ", expected " + want.str() +
                                          " (the prediction and the variance interpolation v, 2C channels: a U-Net "
                                          "with unet::LearnedVariance)");
}
}  // namespace detail

/// The hybrid (or L_vlb-only) loss of a batch. `steps[i]`: sample i's step on `chain`
/// (its timestep, for a chain of every step); x_t = sqrt(a) x0 + sqrt(1 - a) noise is the
/// model's input.
template <class T, class B>
HybridLossResult<T, B> hybrid_loss(const Tensor<T, B>& output, const Tensor<T, B>& x0, const Tensor<T, B>& noise,
                                   std::span<const std::int64_t> steps, const schedule::GaussianPosterior& chain,
                                   schedule::PredictionType prediction, std::span<const double> simple_weights,
                                   std::span<const double> importance_weights, const HybridConfig& config = {}) {
  detail::check_two_headed(output.shape(), x0.shape(), "hybrid_loss");
  expect_shape(noise.shape(), x0.shape(), "hybrid_loss: noise");
  const auto n = static_cast<std::size_t>(x0.dim(0));
  require<ShapeError>(steps.size() == n && simple_weights.size() == n && importance_weights.size() == n,
                      "hybrid_loss: " + std::to_string(steps.size()) + " steps, " +
                          std::to_string(simple_weights.size()) + " simple weights and " +
                          std::to_string(importance_weights.size()) + " importance weights for a batch of " +
                          std::to_string(n));
  require(config.lambda >= 0, "hybrid_loss: lambda must be >= 0, got " + std::to_string(config.lambda));
  const std::size_t d = x0.size() / n;
  const std::vector<T> out_h = output.to_host(), x0_h = x0.to_host(), noise_h = noise.to_host();
  const double big_t = static_cast<double>(chain.size());
  const double vlb_scale = config.vlb_only ? big_t : config.lambda * big_t;

  HybridLossResult<T, B> r;
  r.per_sample.resize(n);
  r.mse.resize(n);
  r.vlb.resize(n);
  std::vector<T> grad(out_h.size());
  std::vector<double> xs(d), xt(d), pred(d), v(d), d_pred, d_v;
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double a = chain.alpha_bar(steps[i]), sa = std::sqrt(a), sb = std::sqrt(1.0 - a);
    const T* o = out_h.data() + 2 * d * i;
    double mse = 0.0;
    for (std::size_t j = 0; j < d; ++j) {
      xs[j] = static_cast<double>(x0_h[d * i + j]);
      const double eps = static_cast<double>(noise_h[d * i + j]);
      xt[j] = sa * xs[j] + sb * eps;
      pred[j] = static_cast<double>(o[j]);
      v[j] = static_cast<double>(o[d + j]);
    }
    const X0Map map = x0_map(a, prediction);
    VlbSampleInput in{xs, xt, pred, v, steps[i], map.sample, map.output, false};
    const double vlb = vlb_term(chain, in, config.vlb_only ? &d_pred : nullptr, &d_v);
    const double w = importance_weights[i] / static_cast<double>(n);
    T* g = grad.data() + 2 * d * i;
    for (std::size_t j = 0; j < d; ++j) {
      const double eps = static_cast<double>(noise_h[d * i + j]);
      const double target = prediction == schedule::PredictionType::Epsilon  ? eps
                            : prediction == schedule::PredictionType::Sample ? xs[j]
                                                                             : sa * eps - sb * xs[j];
      const double diff = pred[j] - target;
      mse += diff * diff;
      double gp = config.vlb_only ? vlb_scale * d_pred[j] : simple_weights[i] * 2.0 * diff / static_cast<double>(d);
      g[j] = static_cast<T>(w * gp);
      g[d + j] = static_cast<T>(w * vlb_scale * d_v[j]);
    }
    mse /= static_cast<double>(d);
    r.mse[i] = mse;
    r.vlb[i] = vlb;
    r.per_sample[i] = config.vlb_only ? vlb_scale * vlb : simple_weights[i] * mse + vlb_scale * vlb;
    total += importance_weights[i] * r.per_sample[i];
  }
  r.loss = total / static_cast<double>(n);
  r.grad = Tensor<T, B>::from_host(output.shape(), grad);
  return r;
}

}  // namespace progdiff::loss

#pragma once
// The diffusion training loss (Ho et al. 2020, eq. 14, generalised to the three prediction types):
//   x_t = sqrt(a_i) x0 + sqrt(1 - a_i) eps,  a_i = alpha-bar at sample i's timestep
//   target: eps (epsilon), x0 (sample) or v = sqrt(a_i) eps - sqrt(1 - a_i) x0 (Salimans & Ho 2022)
//   L = (1 / N) sum_i w_i mean_j (out_ij - target_ij)^2
// and its gradient dL/dout_ij = 2 w_i (out_ij - target_ij) / (N D), D the elements of one sample.
// This is torch's (w * F.mse_loss(out, target, reduction="none").mean(dims)).mean(). Weights w_i
// come from loss_weighting.hpp, optionally times an importance weight of the timestep sampler.
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/loss/loss_weighting.hpp"
#include "progdiff/schedule/noise_schedule.hpp"

namespace progdiff::loss {

/// What the model sees and what it should output, per sample of a batch.
template <class T, class B>
struct TrainingPair {
  Tensor<T, B> x_t;             // [N, ...] noised input
  Tensor<T, B> target;          // [N, ...] the prediction target
  std::vector<double> weights;  // [N] loss weights
};

/// The loss and its gradient with respect to the model output.
template <class T, class B>
struct LossResult {
  double loss = 0.0;               // the weighted mean
  std::vector<double> per_sample;  // [N] unweighted mean squared error of each sample
  Tensor<T, B> grad;               // [N, ...] dL/d output
};

/// alpha-bar of `schedule` at each grid index of `timesteps`.
template <schedule::NoiseSchedule S>
std::vector<double> alpha_bars_at(const S& schedule, std::span<const std::int64_t> timesteps) {
  std::vector<double> out;
  out.reserve(timesteps.size());
  for (std::int64_t t : timesteps) {
    if (t < 0 || t >= static_cast<std::int64_t>(schedule.size()))
      throw ConfigError("alpha_bars_at: timestep " + std::to_string(t) + " outside the schedule's [0, " +
                        std::to_string(schedule.size()) + ")");
    out.push_back(schedule.alpha_bar(t));
  }
  return out;
}

namespace detail {

// out_i = ca_i a_i + cb_i b_i for each sample i (a, b: [N, ...]), in one launch of the back
// end's per-sample weighted sum (the samplers' update kernel), summed in double.
template <class T, class B>
Tensor<T, B> per_sample_combination(const Tensor<T, B>& a, std::span<const double> ca, const Tensor<T, B>& b,
                                    std::span<const double> cb) {
  const std::int64_t n = a.dim(0);
  const auto terms = static_cast<std::size_t>(B::sampler_terms);
  std::vector<double> w(static_cast<std::size_t>(n) * terms, 0.0);
  for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
    w[i * terms] = ca[i];
    w[i * terms + 1] = cb[i];
  }
  const auto weights = Tensor<double, B>::from_host(Shape{n, B::sampler_terms}, w);
  std::array<const T*, B::sampler_terms> operands{};
  operands[0] = a.data();
  operands[1] = b.data();
  Tensor<T, B> out(a.shape());
  B::template weighted_sum<T>(n, a.numel() / n, weights.data(), operands, out.data());
  return out;
}

// x_i *= c_i for each sample i of x [N, ...], in place, in one launch.
template <class T, class B>
void scale_per_sample(Tensor<T, B>& x, std::span<const double> c) {
  const std::int64_t n = x.dim(0);
  const auto terms = static_cast<std::size_t>(B::sampler_terms);
  std::vector<double> w(static_cast<std::size_t>(n) * terms, 0.0);
  for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) w[i * terms] = c[i];
  const auto weights = Tensor<double, B>::from_host(Shape{n, B::sampler_terms}, w);
  std::array<const T*, B::sampler_terms> operands{};
  operands[0] = x.data();
  B::template weighted_sum<T>(n, x.numel() / n, weights.data(), operands, x.data());
}

inline void check_batch(const Shape& x0, const Shape& other, std::size_t coefficients, const char* who) {
  if (x0.rank() < 1 || x0[0] < 1) throw ShapeError(std::string(who) + ": x0 has shape " + x0.str() + ", no batch");
  expect_shape(other, x0, std::string(who) + ": noise");
  if (static_cast<std::int64_t>(coefficients) != x0[0])
    throw ShapeError(std::string(who) + ": " + std::to_string(coefficients) + " alpha-bars for a batch of " +
                     std::to_string(x0[0]));
}

}  // namespace detail

/// The noised input, the target of `prediction` and the weights of `weighting` for clean data
/// x0 [N, ...], noise [N, ...] and the alpha-bar of each sample.
template <class T, class B>
TrainingPair<T, B> make_training_pair(const Tensor<T, B>& x0, const Tensor<T, B>& noise,
                                      std::span<const double> alpha_bars, schedule::PredictionType prediction,
                                      const WeightingConfig& weighting = {}) {
  detail::check_batch(x0.shape(), noise.shape(), alpha_bars.size(), "make_training_pair");
  const std::size_t n = alpha_bars.size();
  std::vector<double> signal(n), noise_scale(n), weights(n);
  for (std::size_t i = 0; i < n; ++i) {
    weights[i] = loss_weight(alpha_bars[i], prediction, weighting);  // also checks a in (0, 1)
    signal[i] = std::sqrt(alpha_bars[i]);
    noise_scale[i] = std::sqrt(1.0 - alpha_bars[i]);
  }
  TrainingPair<T, B> pair;
  pair.x_t = detail::per_sample_combination(x0, signal, noise, noise_scale);
  switch (prediction) {
    case schedule::PredictionType::Epsilon:
      pair.target = noise.clone();
      break;
    case schedule::PredictionType::Sample:
      pair.target = x0.clone();
      break;
    case schedule::PredictionType::VPrediction: {
      std::vector<double> minus_noise_scale(n);
      for (std::size_t i = 0; i < n; ++i) minus_noise_scale[i] = -noise_scale[i];
      pair.target = detail::per_sample_combination(noise, signal, x0, minus_noise_scale);
      break;
    }
  }
  pair.weights = std::move(weights);
  return pair;
}

/// The weighted mean squared error of `output` against `target` and its gradient.
template <class T, class B>
LossResult<T, B> weighted_mse(const Tensor<T, B>& output, const Tensor<T, B>& target, std::span<const double> weights) {
  detail::check_batch(target.shape(), output.shape(), weights.size(), "weighted_mse");
  const std::int64_t n = target.dim(0);
  const std::size_t per = target.size() / static_cast<std::size_t>(n);
  LossResult<T, B> r;
  r.grad = output.clone();
  B::template axpy<T>(r.grad.size(), T(-1), target.data(), r.grad.data());  // diff = out - target
  // Per-sample sums of squares in one reduction (rows of the [1, N, D] view), so the host waits
  // for the device once per batch rather than once per sample.
  Tensor<T, B> squares(r.grad.shape());
  B::template mul<T>(squares.size(), r.grad.data(), r.grad.data(), squares.data());
  Tensor<T, B> sums(Shape{n});
  B::template sample_channel_sum<T>(1, n, static_cast<std::int64_t>(per), squares.data(), sums.data());
  const std::vector<T> sum_host = sums.to_host();
  r.per_sample.resize(static_cast<std::size_t>(n));
  std::vector<double> grad_scale(static_cast<std::size_t>(n));
  double total = 0.0;
  for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
    const double w = weights[i];
    const double mse = static_cast<double>(sum_host[i]) / static_cast<double>(per);
    r.per_sample[i] = mse;
    total += w * mse;
    grad_scale[i] = 2.0 * w / (static_cast<double>(n) * static_cast<double>(per));
  }
  detail::scale_per_sample(r.grad, grad_scale);
  r.loss = total / static_cast<double>(n);
  return r;
}

}  // namespace progdiff::loss

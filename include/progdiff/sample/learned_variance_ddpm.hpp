#pragma once
// DDPM ancestral sampling with a learned variance (IDDPM, Nichol & Dhariwal 2021, eq. 15 and
// sec. 4), on the full chain or a respaced one. The model returns 2C channels, the prediction
// and v; from x_t at sampling timestep t to the next one s (a = alpha-bar, a_{-1} = 1):
//   beta = 1 - a_t / a_s                         (recomputed from the kept alpha-bars: respacing)
//   x0   = the prediction's x0, clipped to [-1, 1] when clip_x0 (IDDPM's clip_denoised)
//   mean = sqrt(a_s) beta / (1 - a_t) x0 + sqrt(1 - beta) (1 - a_s) / (1 - a_t) x_t
//   log Sigma = f log beta + (1 - f) log beta~,  beta~ = max(beta (1 - a_s) / (1 - a_t), 1e-20),
//               f = (v + 1) / 2
//   x_s  = mean + exp(log Sigma / 2) z            (no noise from t = 0)
// which is diffusers' DDPMScheduler(variance_type="learned_range") step. Noise follows the
// stepper's convention (sample id's own Philox stream, draw e + 1 for evaluation e), so a sample
// is the same alone or in any batch. The variance is per element and needs exp, which the
// back-end concept has no kernel for, so the update runs on the host in double (one copy of the
// output down and of the new sample up per step, small beside the network's forward).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/sample/denoiser.hpp"
#include "progdiff/sample/discrete_plan.hpp"
#include "progdiff/sample/noise.hpp"
#include "progdiff/sample/prediction.hpp"

namespace progdiff::sample {

class LearnedVarianceDdpm {
 public:
  LearnedVarianceDdpm(std::vector<double> alphas_cumprod, std::vector<std::int64_t> timesteps, bool clip_x0 = true)
      : plan_(std::move(alphas_cumprod), std::move(timesteps), "LearnedVarianceDdpm"), clip_x0_(clip_x0) {}
  /// All T steps of a schedule, or `steps` of them under `spacing` (IDDPM's strided sampling:
  /// the kept alpha-bars define the chain).
  template <schedule::NoiseSchedule S>
  static LearnedVarianceDdpm from_schedule(const S& s, std::int64_t steps = -1, bool clip_x0 = true,
                                           schedule::TimestepSpacing spacing = schedule::TimestepSpacing::Leading) {
    const std::int64_t n = steps < 0 ? s.size() : steps;
    return LearnedVarianceDdpm(sample::alphas_cumprod(s), schedule::respace(s.size(), n, spacing), clip_x0);
  }

  std::int64_t evaluations() const { return plan_.steps(); }
  const DiscretePlan& plan() const { return plan_; }
  bool clip_x0() const { return clip_x0_; }

  /// The sample after evaluation e from x [N, C, ...], the model's output [N, 2C, ...] on x and
  /// the step's standard normal noise [N, C, ...] (ignored at t = 0).
  template <class T, class B>
  Tensor<T, B> step(const Tensor<T, B>& x, const Tensor<T, B>& output, std::int64_t e, PredictionType prediction,
                    const Tensor<T, B>& noise) const {
    require(e >= 0 && e < evaluations(), "LearnedVarianceDdpm::step: evaluation " + std::to_string(e) +
                                             " outside [0, " + std::to_string(evaluations()) + ")");
    require<ShapeError>(x.rank() >= 2 && x.dim(0) >= 1,
                        "LearnedVarianceDdpm::step: expected x [N, C, ...], got " + x.shape().str());
    Shape two = x.shape();
    two[1] = 2 * x.dim(1);
    require<ShapeError>(output.shape() == two,
                        "LearnedVarianceDdpm::step: the model output has shape " + output.shape().str() +
                            ", expected " + two.str() +
                            " (the prediction and the variance interpolation v: unet::LearnedVariance)");
    expect_shape(noise.shape(), x.shape(), "LearnedVarianceDdpm::step: noise");
    const std::int64_t t = plan_.timestep(e);
    const double a_t = plan_.alpha_bar(t), a_s = plan_.alpha_bar(plan_.previous(e));
    const double beta = 1.0 - a_t / a_s;
    const double c_x0 = std::sqrt(a_s) * beta / (1.0 - a_t), c_xt = std::sqrt(1.0 - beta) * (1.0 - a_s) / (1.0 - a_t);
    const double min_log = std::log(std::max(beta * (1.0 - a_s) / (1.0 - a_t), 1e-20)), max_log = std::log(beta);
    const VpPrediction map = vp_prediction(a_t, prediction);
    const std::vector<T> xs = x.to_host(), out = output.to_host();
    std::vector<T> z;
    if (t > 0) z = noise.to_host();
    const std::size_t n = static_cast<std::size_t>(x.dim(0)), d = xs.size() / n;
    std::vector<T> next(xs.size());
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < d; ++j) {
        const double xt = static_cast<double>(xs[i * d + j]);
        const double pred = static_cast<double>(out[2 * d * i + j]), v = static_cast<double>(out[2 * d * i + d + j]);
        double x0 = map.x0.sample * xt + map.x0.output * pred;
        if (clip_x0_) x0 = std::clamp(x0, -1.0, 1.0);
        double value = c_x0 * x0 + c_xt * xt;
        if (t > 0) {
          const double f = (v + 1.0) / 2.0;
          value += std::exp(0.5 * (f * max_log + (1.0 - f) * min_log)) * static_cast<double>(z[i * d + j]);
        }
        next[i * d + j] = static_cast<T>(value);
      }
    return Tensor<T, B>::from_host(x.shape(), next);
  }

  /// Samples of `shape` from a learned-variance denoiser; deterministic for (seed, first_id).
  template <class T = float, class B = backend::Cpu, class D>
  Tensor<T, B> sample(D& denoiser, Shape shape, std::uint64_t seed, std::uint64_t first_id = 0) const {
    static_assert(check_denoiser<D, T, B>());
    require<ShapeError>(shape.rank() >= 2 && shape[0] >= 1 && shape.numel() > 0,
                        "LearnedVarianceDdpm::sample: expected a batch shape [N, C, ...], got " + shape.str());
    std::vector<std::uint64_t> ids(static_cast<std::size_t>(shape[0]));
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = first_id + i;
    Tensor<T, B> x(shape);
    draw_sample_noise(x, seed, ids, 0);
    const auto prediction = static_cast<PredictionType>(denoiser.prediction_type());
    for (std::int64_t e = 0; e < evaluations(); ++e) {
      const std::vector<std::int64_t> t(ids.size(), plan_.timestep(e));
      Tensor<T, B> out;
      {
        const InferenceMode inference;  // no backward: keep no activations
        out = denoiser.predict(x, std::span<const std::int64_t>(t));
      }
      Tensor<T, B> z(shape);
      if (plan_.timestep(e) > 0) draw_sample_noise(z, seed, ids, static_cast<std::uint64_t>(e) + 1);
      x = step(x, out, e, prediction, z);
    }
    return x;
  }

 private:
  DiscretePlan plan_;
  bool clip_x0_ = true;
};

}  // namespace progdiff::sample

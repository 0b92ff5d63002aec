#pragma once
// FixedSmallVariance: a C-output denoiser (trained on L_simple, say) seen as a learned-variance
// one (2C outputs: the prediction, then the variance interpolation v) whose v is -1 everywhere.
// Under IDDPM's learned range (eq. 15), log Sigma = f log beta + (1 - f) log beta~ with
// f = (v + 1) / 2, v = -1 gives Sigma = beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t), the
// posterior variance ("fixed small"), which is how IDDPM scores the likelihood of its L_simple
// models. So the bits/dim bound (metrics/nll.hpp) and the learned-variance sampler
// (sample/learned_variance_ddpm.hpp) take a fixed-variance model and compare it with a hybrid
// one on the same chain. It is the inverse of sample::MeanOnly (mean_only.hpp).
//   sample::FixedSmallVariance view{model};
//   auto r = metrics::nll_bits_per_dim<float, Cpu>(view, schedule::GaussianPosterior::of(s), test, c);
#include <cstddef>
#include <cstdint>
#include <span>

#include "progdiff/core/tensor.hpp"

namespace progdiff::sample {

template <class D>
class FixedSmallVariance {
 public:
  /// The variance interpolation that selects beta~ at one end of the learned range.
  static constexpr double kVarianceInterpolation = -1.0;
  static constexpr bool learns_variance = true;

  explicit FixedSmallVariance(D& model) : model_(model) {}

  /// [N, C, ...] -> [N, 2C, ...]: each sample's prediction, then C channels of v = -1; the copy
  /// runs on the back end (no trip through the host).
  template <class T, class B>
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const std::int64_t> timesteps) {
    const Tensor<T, B> mean = model_.predict(x, timesteps);
    Shape both = mean.shape();
    both[1] *= 2;
    Tensor<T, B> out(both);
    B::template fill<T>(out.data(), static_cast<std::size_t>(out.numel()), static_cast<T>(kVarianceInterpolation));
    const std::int64_t n = mean.dim(0), d = mean.numel() / n;
    B::template copy_2d<T>(n, d, mean.data(), d, out.data(), 2 * d);
    return out;
  }
  auto prediction_type() const { return model_.prediction_type(); }

 private:
  D& model_;
};

}  // namespace progdiff::sample

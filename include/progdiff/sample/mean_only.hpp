#pragma once
// MeanOnly: a learned-variance model (2C outputs: the prediction, then the variance
// interpolation v) seen by any sampler as a C-output denoiser, its variance head dropped.
// diffusers' DDIMScheduler (0.27) does the same: it has no learned-variance path, and the
// pipelines that run learned-variance models with DDIM split the output and discard the
// variance before the scheduler's step; DDIM's eta > 0 noise keeps its fixed posterior form.
//   sample::MeanOnly mean{model};
//   auto x = sample::Ddim::from_schedule(schedule, 50, 1.0).sample(mean, shape, seed);
#include <cstdint>
#include <span>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/sample/denoiser.hpp"

namespace progdiff::sample {

namespace detail {
/// One half of a [N, 2C, ...] output along the channels, [N, C, ...], in one strided copy on the
/// back end: the first (the prediction) or the second (the variance interpolation v).
template <class T, class B>
Tensor<T, B> channel_half(const Tensor<T, B>& output, bool second, const char* who) {
  require<ShapeError>(
      output.rank() >= 2 && output.dim(1) % 2 == 0,
      std::string(who) + ": expected a [N, 2C, ...] output (prediction and variance), got " + output.shape().str());
  Shape half = output.shape();
  half[1] = output.dim(1) / 2;
  Tensor<T, B> out(half);
  const std::int64_t n = output.dim(0), d = half.numel() / n;
  B::template copy_2d<T>(n, d, output.data() + (second ? d : 0), 2 * d, out.data(), d);
  return out;
}
}  // namespace detail

/// The first half of a [N, 2C, ...] output: the prediction.
template <class T, class B>
Tensor<T, B> mean_channels(const Tensor<T, B>& output, const char* who = "mean_channels") {
  return detail::channel_half(output, false, who);
}

/// The second half of a [N, 2C, ...] output: the variance interpolation v.
template <class T, class B>
Tensor<T, B> variance_channels(const Tensor<T, B>& output, const char* who = "variance_channels") {
  return detail::channel_half(output, true, who);
}

template <class D>
class MeanOnly {
 public:
  explicit MeanOnly(D& model) : model_(model) {}

  template <class T, class B>
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const std::int64_t> timesteps) {
    return mean_channels(model_.predict(x, timesteps), "MeanOnly");
  }
  auto prediction_type() const { return model_.prediction_type(); }

 private:
  D& model_;
};

}  // namespace progdiff::sample

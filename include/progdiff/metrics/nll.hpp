#pragma once
// Negative log-likelihood in bits per dimension of a learned-variance model (IDDPM, Nichol &
// Dhariwal 2021, sec. 2 and Table 2): the variational bound of each image
//   L_vlb = L_0 + sum_{k=1}^{K-1} L_k + L_K,   L_K = KL(q(x_K | x0) || N(0, I))
// with L_0 the discretized decoder and L_k the posterior KLs of loss/vlb_terms.hpp, x0_hat
// clipped to [-1, 1] as IDDPM's evaluation does. The data must lie on the 8-bit grid in [-1, 1].
//
// Every step (NllConfig::steps = 0) costs K model calls per image, 4000 for IDDPM's schedule.
// steps = M > 0 estimates the KL sum instead: per image, M steps drawn uniformly (with
// replacement) from [1, K) and sum_k L_k ~ (K - 1) / M sum_m L_{k_m}, unbiased; L_0 and L_K are
// always exact (L_0 is most of the bound on 8-bit data). The reported standard error is that of
// the mean over images, std(per-image bound) / sqrt(N), which includes the step sampling's
// variance because each image draws its own steps.
//
// Noise and steps are Philox draws keyed by (seed, image), not by batch, so two models evaluated
// with one seed see the same noised inputs (a paired comparison) whatever the batch size.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/loss/hybrid_loss.hpp"
#include "progdiff/loss/vlb_terms.hpp"
#include "progdiff/sample/denoiser.hpp"
#include "progdiff/schedule/gaussian_posterior.hpp"

namespace progdiff::metrics {

/// Philox streams of the likelihood evaluation, apart from those of training and sampling.
inline constexpr std::uint64_t kNllStream = std::uint64_t{0x4e4c4c00} << 32;  // "NLL"

struct NllConfig {
  std::int64_t images = 0;  // the first `images` of the data; 0: all
  std::int64_t batch_size = 64;
  std::int64_t steps = 0;  // 0: every step of the chain; M > 0: M sampled KL steps per image
  std::uint64_t seed = 0;
};

struct NllResult {
  double bits_per_dim = 0.0;    // mean over images of the bound
  double standard_error = 0.0;  // of that mean
  double decoder = 0.0;         // mean L_0
  double prior = 0.0;           // mean L_K
  std::vector<double> per_image;
};

/// L_k in bits per dimension of each image of x0 [N, C, ...] at its own step steps[i] on `chain`
/// (a chain of every step: step = timestep), noised with `noise`; the denoiser returns 2C channels.
template <class D, class T, class B>
std::vector<double> vlb_terms_at(D& denoiser, const schedule::GaussianPosterior& chain, const Tensor<T, B>& x0,
                                 std::span<const std::int64_t> steps, const Tensor<T, B>& noise) {
  static_assert(sample::check_denoiser<D, T, B>());
  expect_shape(noise.shape(), x0.shape(), "vlb_terms_at: noise");
  const auto n = static_cast<std::size_t>(x0.dim(0));
  require<ShapeError>(steps.size() == n,
                      "vlb_terms_at: " + std::to_string(steps.size()) + " steps for a batch of " + std::to_string(n));
  const std::size_t d = x0.size() / n;
  const std::vector<T> x0_h = x0.to_host(), noise_h = noise.to_host();
  std::vector<T> xt_h(x0_h.size());
  std::vector<double> sa(n), sb(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double a = chain.alpha_bar(steps[i]);
    sa[i] = std::sqrt(a);
    sb[i] = std::sqrt(1.0 - a);
    for (std::size_t j = 0; j < d; ++j)
      xt_h[i * d + j] = static_cast<T>(sa[i] * static_cast<double>(x0_h[i * d + j]) +
                                       sb[i] * static_cast<double>(noise_h[i * d + j]));
  }
  const auto x_t = Tensor<T, B>::from_host(x0.shape(), xt_h);
  Tensor<T, B> out;
  {
    const InferenceMode inference;
    out = denoiser.predict(x_t, steps);
  }
  loss::detail::check_two_headed(out.shape(), x0.shape(), "vlb_terms_at");
  const std::vector<T> out_h = out.to_host();
  const auto prediction = static_cast<schedule::PredictionType>(denoiser.prediction_type());
  std::vector<double> xs(d), xt(d), pred(d), v(d), terms(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < d; ++j) {
      xs[j] = static_cast<double>(x0_h[i * d + j]);
      xt[j] = static_cast<double>(xt_h[i * d + j]);
      pred[j] = static_cast<double>(out_h[2 * d * i + j]);
      v[j] = static_cast<double>(out_h[2 * d * i + d + j]);
    }
    const loss::X0Map map = loss::x0_map(chain.alpha_bar(steps[i]), prediction);
    terms[i] = loss::vlb_term(chain, {xs, xt, pred, v, steps[i], map.sample, map.output, true});
  }
  return terms;
}

/// The bound in bits per dimension over the first images of `data`.
template <class T = float, class B = backend::Cpu, class D>
NllResult nll_bits_per_dim(D& denoiser, const schedule::GaussianPosterior& chain, const data::ImageDataset& data,
                           const NllConfig& config = {}) {
  data.validate("nll_bits_per_dim");
  require(config.batch_size >= 1 && config.steps >= 0 && config.images >= 0,
          "nll_bits_per_dim: batch_size must be >= 1, steps and images >= 0");
  const std::int64_t count = config.images > 0 ? std::min(config.images, data.count) : data.count;
  require(count >= 1, "nll_bits_per_dim: no images to evaluate");
  const std::int64_t k_total = chain.size(), d = data.sample_size();
  const bool every = config.steps == 0;
  const std::int64_t rounds = every ? k_total : config.steps + 1;  // round 0: L_0
  NllResult r;
  r.per_image.assign(static_cast<std::size_t>(count), 0.0);
  for (std::int64_t first = 0; first < count; first += config.batch_size) {
    const std::int64_t n = std::min(config.batch_size, count - first);
    const Shape shape{n, data.channels, data.height, data.width};
    const std::vector<float> pixels(data.pixels.begin() + first * d, data.pixels.begin() + (first + n) * d);
    std::vector<T> x0_values(pixels.begin(), pixels.end());
    const auto x0 = Tensor<T, B>::from_host(shape, x0_values);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::span<const float> image(pixels.data() + i * d, static_cast<std::size_t>(d));
      const std::vector<double> x(image.begin(), image.end());
      const double prior = loss::prior_term(x, chain.alpha_bar(k_total - 1));
      r.per_image[static_cast<std::size_t>(first + i)] += prior;
      r.prior += prior;
    }
    for (std::int64_t round = 0; round < rounds; ++round) {
      std::vector<std::int64_t> steps(static_cast<std::size_t>(n));
      Tensor<T, B> noise(shape);
      for (std::int64_t i = 0; i < n; ++i) {
        // image i's stream: draw `round` of its noise at [round D, (round + 1) D), its steps below
        const std::uint64_t stream = kNllStream + static_cast<std::uint64_t>(first + i);
        std::int64_t step = round;
        if (!every && round > 0) {
          Generator g(config.seed, stream ^ 0x5354455053ull, static_cast<std::uint64_t>(round));
          step = 1 + static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(k_total - 1)));
        }
        steps[static_cast<std::size_t>(i)] = step;
        Generator g(config.seed, stream, static_cast<std::uint64_t>(round * d));
        B::template normal<T>(static_cast<std::size_t>(d), g.seed(), g.stream(),
                              g.reserve(static_cast<std::uint64_t>(d)), noise.data() + i * d);
      }
      const std::vector<double> terms = vlb_terms_at(denoiser, chain, x0, std::span<const std::int64_t>(steps), noise);
      const double scale =
          every || round == 0 ? 1.0 : static_cast<double>(k_total - 1) / static_cast<double>(config.steps);
      for (std::int64_t i = 0; i < n; ++i) {
        r.per_image[static_cast<std::size_t>(first + i)] += scale * terms[static_cast<std::size_t>(i)];
        if (round == 0) r.decoder += terms[static_cast<std::size_t>(i)];
      }
    }
  }
  const double images = static_cast<double>(count);
  double mean = 0.0, var = 0.0;
  for (double v : r.per_image) mean += v / images;
  for (double v : r.per_image) var += (v - mean) * (v - mean);
  r.bits_per_dim = mean;
  r.standard_error = count > 1 ? std::sqrt(var / (images - 1.0) / images) : 0.0;
  r.decoder /= images;
  r.prior /= images;
  return r;
}

}  // namespace progdiff::metrics

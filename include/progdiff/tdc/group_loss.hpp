#pragma once
// The loss of one denoiser on one timestep group's timesteps, as TDC pruning needs it: the
// held-out loss Loss(U_{theta - theta'}(T(i), D, S)) that ranks pruning schemes (eqs. 14, 17 of
// Step-Adaptive Training), and the loss gradients that Taylor and Diff-Pruning importance read.
//
//   auto held_out = tdc::GroupBatches<T, B>::held_out(schedule, prediction, data, begin, end, 64, 64, seed, stream);
//   double loss = held_out.loss(net);                     // evaluation mode, no gradients kept
//   auto batch = tdc::GroupBatches<T, B>::at_timesteps(schedule, prediction, data, first, ts, seed, stream);
//   double l = batch.loss_and_gradients(net);             // zeroes, then fills the parameter gradients
//
// Every draw is a Philox value keyed by (seed, stream, image), so two nets evaluated on the same
// set see exactly the same noised inputs: their losses form a paired comparison. The loss is that
// of the net's prediction head (tdc/prediction_head_loss.hpp): the whole output of a C-output
// net, the first C channels of a learned-variance net's 2C.
//
// How clean images, noise and timesteps become the net's input, noise label and target is a
// policy (a "noising"): ScheduleNoising, the variance-preserving x_t of a schedule with the
// target of a prediction type (what the calls above use), or EdmNoising, the inner network F of
// an EDM base (model::EdmPreconditioned):
//
//   auto set = tdc::GroupBatches<T, B>::held_out_edm(base.preconditioning(), base.grid(), data, begin, end,
//                                                    64, 64, seed, stream);
//   double loss = set.loss(base.inner().denoiser(0));    // F's loss, which is EDM's loss of D
//
// EDM's loss of D = c_skip x + c_out F(c_in x; c_noise) at x = y + sigma n, weighted by
// lambda(sigma) = 1 / c_out^2 (Karras et al. 2022, eq. 8 and Table 1), is per sample
//   lambda || c_skip x + c_out F - y ||^2 = || F - (y - c_skip x) / c_out ||^2,
// the unit-weight MSE of F against the effective target (y - c_skip x) / c_out; with Table 1's
// coefficients that target is (sigma y / sigma_data - sigma_data n) / sqrt(sigma^2 + sigma_data^2).
// So scoring F on (c_in x, c_noise, effective target) scores the EDM loss of the whole
// denoiser, and the gradient criteria differentiate that same loss with respect to F's weights.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/model/edm_preconditioning.hpp"
#include "progdiff/model/grouped_model.hpp"
#include "progdiff/schedule/edm_sigma.hpp"
#include "progdiff/schedule/noise_schedule.hpp"
#include "progdiff/tdc/prediction_head_loss.hpp"

namespace progdiff::tdc {

/// One batch as a net sees it: its input, its noise-label input (forward(x, t)'s t), the target
/// of its output and a weight per sample.
template <class T, class B>
struct NoisedBatch {
  Tensor<T, B> input, label, target;
  std::vector<double> weights;
};

/// The variance-preserving noising of `schedule`: x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar)
/// n, the timestep as the label, and the target of `prediction` (loss/diffusion_loss.hpp).
template <schedule::NoiseSchedule S>
struct ScheduleNoising {
  const S& schedule;
  schedule::PredictionType prediction = schedule::PredictionType::Epsilon;

  std::int64_t size() const { return static_cast<std::int64_t>(schedule.size()); }
  template <class T, class B>
  NoisedBatch<T, B> operator()(const Tensor<T, B>& x0, const Tensor<T, B>& noise,
                               const std::vector<std::int64_t>& timesteps) const {
    const std::vector<double> alpha_bars = loss::alpha_bars_at(schedule, std::span<const std::int64_t>(timesteps));
    loss::TrainingPair<T, B> pair =
        loss::make_training_pair(x0, noise, std::span<const double>(alpha_bars), prediction, {});
    return {pair.x_t, model::timestep_tensor<T, B>(timesteps), pair.target, pair.weights};
  }
};

/// The inner network F of an EDM denoiser (model::EdmPreconditioned) at grid timesteps: sigma =
/// grid.sigma_at(t), x = y + sigma n, F's input c_in x and noise label c_noise exactly as
/// EdmPreconditioned::forward_sigma feeds them, the effective target (y - c_skip x) / c_out and
/// unit weights: F's MSE against it is EDM's lambda-weighted loss of D (see the top of this file).
struct EdmNoising {
  model::EdmPreconditioning preconditioning;
  schedule::EdmSigma grid;

  std::int64_t size() const { return grid.size(); }
  template <class T, class B>
  NoisedBatch<T, B> operator()(const Tensor<T, B>& x0, const Tensor<T, B>& noise,
                               const std::vector<std::int64_t>& timesteps) const {
    const std::size_t n = timesteps.size();
    std::vector<double> in_y(n), in_n(n), target_y(n), target_n(n);
    std::vector<T> label(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t t = timesteps[i];
      require(t >= 0 && t < grid.size(), "EdmNoising: timestep " + std::to_string(t) + " outside the EDM grid's [0, " +
                                             std::to_string(grid.size()) + ")");
      const double sigma = grid.sigma_at(static_cast<double>(t));
      const model::EdmCoefficients c = preconditioning.at(sigma, grid);
      in_y[i] = c.c_in, in_n[i] = c.c_in * sigma;  // c_in (y + sigma n)
      // (y - c_skip (y + sigma n)) / c_out, as coefficients of y and n
      target_y[i] = (1.0 - c.c_skip) / c.c_out, target_n[i] = -c.c_skip * sigma / c.c_out;
      label[i] = static_cast<T>(c.c_noise);  // the same rounding as EdmPreconditioned's label tensor
    }
    NoisedBatch<T, B> b;
    b.input =
        loss::detail::per_sample_combination(x0, std::span<const double>(in_y), noise, std::span<const double>(in_n));
    b.label = Tensor<T, B>::from_host(Shape{static_cast<std::int64_t>(n)}, label);
    b.target = loss::detail::per_sample_combination(x0, std::span<const double>(target_y), noise,
                                                    std::span<const double>(target_n));
    b.weights.assign(n, 1.0);
    return b;
  }
};

/// A noising policy: size() timesteps and the batch at given timesteps (ScheduleNoising, EdmNoising).
template <class N, class T, class B>
concept NoisingFor = requires(const N& noising, const Tensor<T, B>& x, const std::vector<std::int64_t>& ts) {
  { noising.size() } -> std::convertible_to<std::int64_t>;
  { noising.template operator()<T, B>(x, x, ts) } -> std::same_as<NoisedBatch<T, B>>;
};

/// Noised inputs, targets and timesteps of a fixed set of images, in batches.
template <class T, class B>
class GroupBatches {
 public:
  /// `samples` images of `data` from the first (wrapping around), image i at a timestep drawn
  /// uniformly from [begin, end) and with noise, both keyed by (seed, stream, i).
  template <schedule::NoiseSchedule S>
  static GroupBatches held_out(const S& schedule, schedule::PredictionType prediction, const data::ImageDataset& data,
                               std::int64_t begin, std::int64_t end, std::int64_t samples, std::int64_t batch_size,
                               std::uint64_t seed, std::uint64_t stream) {
    return held_out(ScheduleNoising<S>{schedule, prediction}, data, begin, end, samples, batch_size, seed, stream);
  }

  /// The same for the inner network F of an EDM denoiser with `preconditioning` on `grid` (EdmNoising).
  /// The group's grid timesteps are drawn uniformly, not by EDM's log-normal training density:
  /// the score ranks schemes for the net that serves the group's whole sigma interval at sampling
  /// time, whose steps are spread over the grid in tau rather than concentrated where the
  /// log-normal puts its mass; with the preconditioning, F's target has unit variance at every
  /// sigma, so unit weights keep every noise level on one scale. The draws are the same Philox
  /// values as for the other objectives.
  static GroupBatches held_out_edm(const model::EdmPreconditioning& preconditioning, const schedule::EdmSigma& grid,
                                   const data::ImageDataset& data, std::int64_t begin, std::int64_t end,
                                   std::int64_t samples, std::int64_t batch_size, std::uint64_t seed,
                                   std::uint64_t stream) {
    return held_out(EdmNoising{preconditioning, grid}, data, begin, end, samples, batch_size, seed, stream);
  }

  /// The same with any noising policy (NoisingFor).
  template <class N>
  requires NoisingFor<N, T, B>
  static GroupBatches held_out(const N& noising, const data::ImageDataset& data, std::int64_t begin, std::int64_t end,
                               std::int64_t samples, std::int64_t batch_size, std::uint64_t seed,
                               std::uint64_t stream) {
    require(begin >= 0 && end > begin && end <= noising.size(),
            "GroupBatches: timesteps [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") outside the schedule's " + std::to_string(noising.size()));
    require(samples > 0 && batch_size > 0, "GroupBatches: samples and batch_size must be positive");
    GroupBatches set;
    for (std::int64_t first = 0; first < samples; first += batch_size) {
      std::vector<std::int64_t> ts;
      for (std::int64_t i = first; i < std::min(samples, first + batch_size); ++i) {
        Generator pick(seed, stream, static_cast<std::uint64_t>(i));
        ts.push_back(begin + static_cast<std::int64_t>(pick.below(static_cast<std::uint64_t>(end - begin))));
      }
      set.add(noising, data, first, ts, seed, stream + 1);
    }
    return set;
  }

  /// One batch: images first, first + 1, ... of `data` (wrapping around) at `timesteps`.
  template <schedule::NoiseSchedule S>
  static GroupBatches at_timesteps(const S& schedule, schedule::PredictionType prediction,
                                   const data::ImageDataset& data, std::int64_t first,
                                   const std::vector<std::int64_t>& timesteps, std::uint64_t seed,
                                   std::uint64_t stream) {
    return at_timesteps(ScheduleNoising<S>{schedule, prediction}, data, first, timesteps, seed, stream);
  }

  /// The same with any noising policy (NoisingFor; EdmNoising for an EDM base's inner network).
  template <class N>
  requires NoisingFor<N, T, B>
  static GroupBatches at_timesteps(const N& noising, const data::ImageDataset& data, std::int64_t first,
                                   const std::vector<std::int64_t>& timesteps, std::uint64_t seed,
                                   std::uint64_t stream) {
    GroupBatches set;
    set.add(noising, data, first, timesteps, seed, stream);
    return set;
  }

  std::int64_t samples() const { return samples_; }

  /// The mean weighted loss of `net`'s prediction head (a U-Net: forward(x, t)) in evaluation mode.
  template <class Net>
  double loss(Net& net) const {
    const InferenceMode inference;
    net.set_training(false);
    double sum = 0.0;
    for (const auto& b : batches_) {
      const Tensor<T, B> out = net.forward(b.x_t, b.t);
      sum += prediction_head_loss<Net>(out, b.target, std::span<const double>(b.weights)).loss *
             static_cast<double>(b.size);
    }
    net.set_training(true);
    return sum / static_cast<double>(samples_);
  }

  /// Zeroes the parameter gradients of `net`, then accumulates those of the mean weighted loss of
  /// its prediction head over the set's batches (evaluation mode: no dropout); returns that loss.
  template <class Net>
  double loss_and_gradients(Net& net) const {
    net.visit_parameters([](const std::string&, auto& p) { p.zero_grad(); }, std::string());
    net.set_training(false);
    double sum = 0.0;
    for (const auto& b : batches_) {
      const Tensor<T, B> out = net.forward(b.x_t, b.t);
      std::vector<double> w = b.weights;  // each batch's share of the whole set's mean
      for (double& v : w) v *= static_cast<double>(b.size) / static_cast<double>(samples_);
      loss::LossResult<T, B> l = prediction_head_loss<Net>(out, b.target, std::span<const double>(w));
      net.backward(l.grad);
      sum += l.loss;
    }
    net.set_training(true);
    return sum;
  }

 private:
  struct Batch {
    Tensor<T, B> x_t, target, t;
    std::vector<double> weights;
    std::int64_t size = 0;
  };

  template <class N>
  void add(const N& noising, const data::ImageDataset& data, std::int64_t first,
           const std::vector<std::int64_t>& timesteps, std::uint64_t seed, std::uint64_t stream) {
    data.validate("GroupBatches");
    require(data.count > 0, "GroupBatches: the dataset holds no images");
    const auto n = static_cast<std::int64_t>(timesteps.size());
    const std::int64_t d = data.sample_size();
    std::vector<T> pixels(static_cast<std::size_t>(n * d));
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t image = (first + i) % data.count;
      for (std::int64_t j = 0; j < d; ++j)
        pixels[static_cast<std::size_t>(i * d + j)] =
            static_cast<T>(data.pixels[static_cast<std::size_t>(image * d + j)]);
    }
    const Shape shape{n, data.channels, data.height, data.width};
    const Tensor<T, B> x0 = Tensor<T, B>::from_host(shape, pixels);
    Tensor<T, B> noise(shape);
    for (std::int64_t i = 0; i < n; ++i)
      B::template normal<T>(static_cast<std::size_t>(d), seed, stream,
                            static_cast<std::uint64_t>(first + i) * static_cast<std::uint64_t>(d),
                            noise.data() + i * d);
    NoisedBatch<T, B> b = noising.template operator()<T, B>(x0, noise, timesteps);
    batches_.push_back(Batch{std::move(b.input), std::move(b.target), std::move(b.label), std::move(b.weights), n});
    samples_ += n;
  }

  std::vector<Batch> batches_;
  std::int64_t samples_ = 0;
};

}  // namespace progdiff::tdc

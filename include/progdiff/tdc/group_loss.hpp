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
#include <algorithm>
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
#include "progdiff/model/grouped_model.hpp"
#include "progdiff/schedule/noise_schedule.hpp"
#include "progdiff/tdc/prediction_head_loss.hpp"

namespace progdiff::tdc {

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
    require(begin >= 0 && end > begin && end <= schedule.size(),
            "GroupBatches: timesteps [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") outside the schedule's " + std::to_string(schedule.size()));
    require(samples > 0 && batch_size > 0, "GroupBatches: samples and batch_size must be positive");
    GroupBatches set;
    for (std::int64_t first = 0; first < samples; first += batch_size) {
      std::vector<std::int64_t> ts;
      for (std::int64_t i = first; i < std::min(samples, first + batch_size); ++i) {
        Generator pick(seed, stream, static_cast<std::uint64_t>(i));
        ts.push_back(begin + static_cast<std::int64_t>(pick.below(static_cast<std::uint64_t>(end - begin))));
      }
      set.add(schedule, prediction, data, first, ts, seed, stream + 1);
    }
    return set;
  }

  /// One batch: images first, first + 1, ... of `data` (wrapping around) at `timesteps`.
  template <schedule::NoiseSchedule S>
  static GroupBatches at_timesteps(const S& schedule, schedule::PredictionType prediction,
                                   const data::ImageDataset& data, std::int64_t first,
                                   const std::vector<std::int64_t>& timesteps, std::uint64_t seed,
                                   std::uint64_t stream) {
    GroupBatches set;
    set.add(schedule, prediction, data, first, timesteps, seed, stream);
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

  template <schedule::NoiseSchedule S>
  void add(const S& schedule, schedule::PredictionType prediction, const data::ImageDataset& data, std::int64_t first,
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
    const std::vector<double> alpha_bars = loss::alpha_bars_at(schedule, std::span<const std::int64_t>(timesteps));
    loss::TrainingPair<T, B> pair =
        loss::make_training_pair(x0, noise, std::span<const double>(alpha_bars), prediction, {});
    batches_.push_back(Batch{pair.x_t, pair.target, model::timestep_tensor<T, B>(timesteps), pair.weights, n});
    samples_ += n;
  }

  std::vector<Batch> batches_;
  std::int64_t samples_ = 0;
};

}  // namespace progdiff::tdc

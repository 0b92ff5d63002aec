#pragma once
// The denoising loss of a model on held-out data, per timestep group: for every group of a
// partition (group/partition.hpp), the diffusion training loss (loss/diffusion_loss.hpp, Ho et al.
// 2020 eq. 14 for the model's prediction type) on the first `samples_per_group` images of the data,
// each at a timestep drawn uniformly inside the group. How well a model denoises within each group
// is the quantity a progressive or grouped model trades between groups.
//
// Timesteps and noise are Philox draws keyed by (seed, group, image), not by batch: every model
// evaluated with the same seed sees exactly the same noised inputs, whatever the batch size, so
// the losses of two models form a paired comparison with far less variance than two independent
// draws would give.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/loss/loss_weighting.hpp"
#include "progdiff/metrics/classifier_training.hpp"
#include "progdiff/sample/denoiser.hpp"
#include "progdiff/schedule/noise_schedule.hpp"

namespace progdiff::metrics {

/// Philox streams of the evaluation noise and timesteps, apart from those of training and sampling.
inline constexpr std::uint64_t kGroupLossStream = std::uint64_t{0x4c4f5353} << 32;  // "LOSS"

struct GroupLossConfig {
  std::int64_t samples_per_group = 1000;  // 0: every image of the data
  std::int64_t batch_size = 250;
  std::uint64_t seed = 0;
  loss::WeightingConfig weighting = {};  // the weights of `weighted_loss`; `mse` is always unweighted
};

struct GroupLoss {
  std::int64_t group = 0;
  std::int64_t first_timestep = 0, end_timestep = 0;  // the group's timesteps [first, end)
  std::int64_t samples = 0;
  double mse = 0.0;            // mean over samples of the per-sample mean squared error
  double weighted_loss = 0.0;  // mean over samples of weight * mse (the training objective)
};

/// The denoising loss of `model` (a sample::Denoiser) on `data` for each group of `partition`,
/// a partition of `schedule`'s timesteps.
template <class T, class B, class Model, schedule::NoiseSchedule S>
std::vector<GroupLoss> denoising_loss_per_group(Model& model, const S& schedule, const group::Partition& partition,
                                                const data::ImageDataset& data, const GroupLossConfig& config = {}) {
  static_assert(sample::check_denoiser<Model, T, B>());
  partition.validate(static_cast<std::int64_t>(schedule.size()));
  data.validate("denoising_loss_per_group");
  const std::int64_t samples = config.samples_per_group > 0 ? config.samples_per_group : data.count;
  require(samples <= data.count && samples > 0, "denoising_loss_per_group: " + std::to_string(samples) +
                                                    " samples per group requested from " + std::to_string(data.count) +
                                                    " images");
  require(config.batch_size > 0, "denoising_loss_per_group: batch_size must be positive");
  const std::int64_t d = data.sample_size();

  std::vector<GroupLoss> out;
  for (std::int64_t g = 0; g < partition.groups(); ++g) {
    GroupLoss r;
    r.group = g;
    r.first_timestep = partition.begin(g);
    r.end_timestep = partition.end(g);
    r.samples = samples;
    const std::uint64_t stream = kGroupLossStream + static_cast<std::uint64_t>(g);
    const auto width = static_cast<std::uint64_t>(r.end_timestep - r.first_timestep);
    for (std::int64_t begin = 0; begin < samples; begin += config.batch_size) {
      const std::int64_t end = std::min(samples, begin + config.batch_size), n = end - begin;
      const Tensor<T, B> x0 = dataset_images<T, B>(data, begin, end);
      Tensor<T, B> noise(x0.shape());
      std::vector<std::int64_t> timesteps(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) {
        const auto id = static_cast<std::uint64_t>(begin + i);
        // Image id's noise fills counters [id D, (id + 1) D) of the group's stream; its timestep is
        // Generator::below at counter id, which draws from a stream of its own.
        Generator pick(config.seed, stream, id);
        timesteps[static_cast<std::size_t>(i)] = r.first_timestep + static_cast<std::int64_t>(pick.below(width));
        B::template normal<T>(static_cast<std::size_t>(d), config.seed, stream, id * static_cast<std::uint64_t>(d),
                              noise.data() + i * d);
      }
      const std::vector<double> alpha_bars = loss::alpha_bars_at(schedule, std::span<const std::int64_t>(timesteps));
      const auto pair = loss::make_training_pair(x0, noise, std::span<const double>(alpha_bars),
                                                 model.prediction_type(), config.weighting);
      const Tensor<T, B> prediction = model.predict(pair.x_t, std::span<const std::int64_t>(timesteps));
      const auto loss = loss::weighted_mse(prediction, pair.target, std::span<const double>(pair.weights));
      for (std::int64_t i = 0; i < n; ++i) {
        const double mse = loss.per_sample[static_cast<std::size_t>(i)];
        r.mse += mse;
        r.weighted_loss += pair.weights[static_cast<std::size_t>(i)] * mse;
      }
    }
    r.mse /= static_cast<double>(samples);
    r.weighted_loss /= static_cast<double>(samples);
    out.push_back(r);
  }
  return out;
}

}  // namespace progdiff::metrics

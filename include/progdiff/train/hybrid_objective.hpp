#pragma once
// IDDPM's hybrid objective (loss/hybrid_loss.hpp) as a Trainer objective:
//   Trainer<Model, Schedule, HybridObjective> trainer(model, schedule, data, options, mode, HybridObjective{});
//   train::train_stage1(base, schedule, data, options, train::HybridObjective{});
// The model must predict a variance (unet::LearnedVariance); its timesteps index the schedule's
// full chain. The loss weighting of TrainOptions weights L_simple; the timestep sampler's
// importance weights weight the whole per-sample loss, and the sampler records that per-sample
// loss, as IDDPM's loss-aware sampler does (with vlb_only: IDDPM's importance-sampled L_vlb,
// make_sampler returning ImportanceTimesteps(begin, end) with its defaults 10 and 0.001).
#include <span>
#include <vector>

#include "progdiff/loss/hybrid_loss.hpp"
#include "progdiff/schedule/gaussian_posterior.hpp"
#include "progdiff/train/objective.hpp"

namespace progdiff::train {

struct HybridObjective {
  loss::HybridConfig config{};

  template <class Model>
  static constexpr bool check_model() {
    static_assert(unet::learns_variance_v<Model>,
                  "progdiff::train: HybridObjective needs a model with 2C outputs, the prediction and the variance "
                  "interpolation v; compose its U-Net with unet::LearnedVariance (e.g. unet::UNet<unet::Levels<1, 2>, "
                  "unet::LearnedVariance>)");
    return true;
  }

  template <class T, class B, schedule::NoiseSchedule S, class Forward>
  loss::LossResult<T, B> operator()(const S& schedule, const Tensor<T, B>& x0, const Tensor<T, B>& noise,
                                    const TimestepDraw& draw, schedule::PredictionType prediction,
                                    const loss::WeightingConfig& weighting, Forward&& forward) const {
    const schedule::GaussianPosterior chain = schedule::GaussianPosterior::of(schedule);
    const auto alpha_bars = loss::alpha_bars_at(schedule, std::span<const std::int64_t>(draw.timesteps));
    // the model's input on the back end, exactly as the simple objective builds it
    const loss::TrainingPair<T, B> pair = loss::make_training_pair(x0, noise, alpha_bars, prediction, weighting);
    const Tensor<T, B> out = forward(pair.x_t);
    return loss::hybrid_loss(out, x0, noise, std::span<const std::int64_t>(draw.timesteps), chain, prediction,
                             std::span<const double>(pair.weights), std::span<const double>(draw.weights), config);
  }
};

}  // namespace progdiff::train

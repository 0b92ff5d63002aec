#pragma once
// Training objectives as types: what the Trainer (train/trainer.hpp) computes from a batch, its
// noise and its timesteps around the model's forward. An objective is a type with
//   template <class Model> static constexpr bool check_model();   // static_asserts on the model
//   LossResult<T, B> operator()(schedule, x0, noise, draw, prediction, weighting, forward) const;
// where forward(x_t) returns the model's output at the draw's timesteps; the trainer then feeds
// the result's gradient to the model's backward and its per-sample losses to the timestep sampler.
//   SimpleObjective   the epsilon / x0 / v mean-squared error of diffusion_loss.hpp (the default)
//   HybridObjective   IDDPM's L_simple + lambda L_vlb with a learned variance (hybrid_objective.hpp)
#include <concepts>
#include <span>

#include "progdiff/core/tensor.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/schedule/noise_schedule.hpp"
#include "progdiff/train/timestep_sampler.hpp"
#include "progdiff/unet/output_channels.hpp"

namespace progdiff::train {

/// The mean-squared error of the model's prediction type, weighted by the loss weighting times
/// the sampler's importance weight (DDPM's L_simple and its variants).
struct SimpleObjective {
  template <class Model>
  static constexpr bool check_model() {
    static_assert(!unet::learns_variance_v<Model>,
                  "progdiff::train: this model predicts a variance (unet::LearnedVariance, 2C outputs); train it with "
                  "train::HybridObjective, which gives the variance head its loss");
    return true;
  }

  template <class T, class B, schedule::NoiseSchedule S, class Forward>
  loss::LossResult<T, B> operator()(const S& schedule, const Tensor<T, B>& x0, const Tensor<T, B>& noise,
                                    const TimestepDraw& draw, schedule::PredictionType prediction,
                                    const loss::WeightingConfig& weighting, Forward&& forward) const {
    const auto alpha_bars = loss::alpha_bars_at(schedule, std::span<const std::int64_t>(draw.timesteps));
    loss::TrainingPair<T, B> pair = loss::make_training_pair(x0, noise, alpha_bars, prediction, weighting);
    for (std::size_t i = 0; i < pair.weights.size(); ++i) pair.weights[i] *= draw.weights[i];
    const Tensor<T, B> out = forward(pair.x_t);
    return loss::weighted_mse(out, pair.target, pair.weights);
  }
};

/// A type usable as the Trainer's objective for Model (its model check is a static_assert).
template <class O, class Model>
concept ObjectiveFor = requires {
  O::template check_model<Model>();
};

template <class O, class Model>
constexpr bool check_objective() {
  static_assert(
      requires { O::template check_model<Model>(); },
      "progdiff::train: a training objective needs template <class Model> static constexpr bool "
      "check_model() and operator()(schedule, x0, noise, draw, prediction, weighting, forward) "
      "(see progdiff/train/objective.hpp)");
  return O::template check_model<Model>();
}

}  // namespace progdiff::train

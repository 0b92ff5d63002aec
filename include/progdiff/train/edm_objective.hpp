#pragma once
// EDM's training objective (Karras et al. 2022, sec. 5, eq. 8) as a Trainer objective:
//   L = E_{sigma, y, n} [ lambda(sigma) || D(y + n; sigma) - y ||^2 ],   n ~ N(0, sigma^2 I),
//   lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out(sigma)^2,
// with ln(sigma) ~ N(P_mean, P_std^2) drawn on the EDM grid's timesteps (log_normal_timesteps.hpp).
// The squared norm is a per-element mean here, as in progdiff's other losses (EDM's code sums over
// the elements: a constant factor). Per sample i: w_i lambda(sigma_i) mean_j (D_ij - y_ij)^2,
// w_i the sampler's weight; the loss is the batch mean; the gradient goes to D.
//
//   using Model = model::EdmPreconditioned<model::Progressive<Net>>;
//   Model m(model::Progressive<Net>(Net(...), grid.size()), grid);
//   train::Trainer<Model, schedule::EDM, train::EdmObjective> t(m, grid.schedule(), data, options,
//                                                             train::BatchMode::PerGroup, train::EdmObjective{});
// Unless TrainOptions::make_sampler is set, the trainer asks the objective for each group's sampler
// (default_sampler): LogNormalTimesteps over the model's grid. The schedule must be the model's
// grid (grid.schedule(): s_t = 1, sigma_t = grid sigma); TrainOptions::weighting is not used.
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/model/edm_preconditioning.hpp"
#include "progdiff/train/log_normal_timesteps.hpp"
#include "progdiff/train/objective.hpp"
#include "progdiff/train/trainer_options.hpp"

namespace progdiff::train {

template <class M>
inline constexpr bool is_edm_preconditioned_v = false;
template <class M>
inline constexpr bool is_edm_preconditioned_v<model::EdmPreconditioned<M>> = true;

/// lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (EDM's loss weight).
inline double edm_loss_weight(double sigma, double sigma_data) {
  require(sigma > 0 && sigma_data > 0, "edm_loss_weight: sigma and sigma_data must be > 0, got " +
                                           std::to_string(sigma) + ", " + std::to_string(sigma_data));
  const double p = sigma * sigma_data;
  return (sigma * sigma + sigma_data * sigma_data) / (p * p);
}

struct EdmObjective {
  LogNormalSigmaConfig sigmas{};  // P_mean, P_std, group weights
  double sigma_data = 0.5;        // must equal the model's preconditioning's (checked in default_sampler)

  template <class Model>
  static constexpr bool check_model() {
    static_assert(is_edm_preconditioned_v<Model>,
                  "progdiff::train: EdmObjective trains D(x; sigma) = c_skip x + c_out F(c_in x, c_noise); wrap the "
                  "model in model::EdmPreconditioned (e.g. model::EdmPreconditioned<model::Progressive<Net>>)");
    if constexpr (is_edm_preconditioned_v<Model>)
      static_assert(!unet::learns_variance_v<typename Model::inner_type>,
                    "progdiff::train: EdmObjective has no loss for a variance head (unet::LearnedVariance); use a "
                    "U-Net with unet::FixedVariance");
    return true;
  }

  /// The trainer's sampler for group k when TrainOptions::make_sampler is not set.
  template <class Model>
  AnyTimestepSampler default_sampler(const Model& model, std::int64_t, std::int64_t begin, std::int64_t end) const {
    require(model.preconditioning().sigma_data == sigma_data,
            "EdmObjective: sigma_data " + std::to_string(sigma_data) + " differs from the model's preconditioning (" +
                std::to_string(model.preconditioning().sigma_data) + ")");
    return LogNormalTimesteps(model.grid(), begin, end, sigmas);
  }

  template <class T, class B, schedule::NoiseSchedule S, class Forward>
  loss::LossResult<T, B> operator()(const S& schedule, const Tensor<T, B>& x0, const Tensor<T, B>& noise,
                                    const TimestepDraw& draw, schedule::PredictionType prediction,
                                    const loss::WeightingConfig&, Forward&& forward) const {
    require(prediction == schedule::PredictionType::Sample,
            "EdmObjective: the model must output D (model::EdmPreconditioned's prediction type is sample)");
    const std::size_t n = draw.timesteps.size();
    loss::detail::check_batch(x0.shape(), noise.shape(), n, "EdmObjective");
    require(draw.weights.size() == n, "EdmObjective: " + std::to_string(draw.weights.size()) + " weights for " +
                                          std::to_string(n) + " timesteps");
    std::vector<double> ones(n, 1.0), sigmas(n), weights(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t t = draw.timesteps[i];
      require(t >= 0 && t < static_cast<std::int64_t>(schedule.size()),
              "EdmObjective: timestep " + std::to_string(t) + " outside the schedule");
      require(std::abs(schedule.scale(t) - 1.0) < 1e-12,
              "EdmObjective: the schedule must keep s_t = 1 (pass the model's grid().schedule()), timestep " +
                  std::to_string(t) + " has s_t = " + std::to_string(schedule.scale(t)));
      sigmas[i] = schedule.sigma(t);
      weights[i] = draw.weights[i] * edm_loss_weight(sigmas[i], sigma_data);
    }
    const Tensor<T, B> x_t = loss::detail::per_sample_combination(x0, ones, noise, sigmas);  // y + sigma n
    const Tensor<T, B> d = forward(x_t);
    return loss::weighted_mse(d, x0, std::span<const double>(weights));
  }
};

}  // namespace progdiff::train

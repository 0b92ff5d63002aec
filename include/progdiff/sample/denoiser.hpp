#pragma once
// The Denoiser concept: what a sampler asks of a model. predict(x, timesteps) returns the
// network output for a batch x [N, ...] with one timestep per sample, so a batch may mix
// timesteps (and a grouped model may route each sample to its group's denoiser); the
// output's meaning is the model's prediction type (epsilon, x0 or v).
//
// Samplers on discrete timesteps (DDPM, DDIM, DPM-Solver++) pass integer timesteps. Samplers
// on sigmas (Euler, Heun) pass the continuous timestep of each sigma: a model that also has
// predict(x, std::span<const double>) gets it as is, any other gets the nearest integer, as a
// discrete model run by diffusers' Euler scheduler would see after rounding.
//
// Samplers call predict in inference mode (core/inference_mode.hpp): layers keep nothing for a
// backward pass during the call, as under PyTorch's no_grad.
#include <concepts>
#include <cstdint>
#include <span>

#include "progdiff/core/tensor.hpp"
#include "progdiff/schedule/prediction_type.hpp"

namespace progdiff::sample {

using schedule::PredictionType;

inline const char* prediction_name(PredictionType p) {
  switch (p) {
    case PredictionType::Epsilon:
      return "epsilon";
    case PredictionType::Sample:
      return "sample";
    case PredictionType::VPrediction:
      return "v_prediction";
  }
  return "?";
}

// clang-format off
template <class D, class T, class B>
concept Denoiser = requires(D& d, const Tensor<T, B>& x, std::span<const std::int64_t> t) {
  { d.predict(x, t) } -> std::same_as<Tensor<T, B>>;
  { d.prediction_type() } -> std::convertible_to<PredictionType>;
};

/// A denoiser that also accepts continuous timesteps (one double per sample).
template <class D, class T, class B>
concept ContinuousDenoiser = Denoiser<D, T, B> && requires(D& d, const Tensor<T, B>& x, std::span<const double> t) {
  { d.predict(x, t) } -> std::same_as<Tensor<T, B>>;
};
// clang-format on

/// Readable failure at every composition point that takes a denoiser.
template <class D, class T, class B>
constexpr bool check_denoiser() {
  static_assert(Denoiser<D, T, B>,
                "progdiff: the model type does not satisfy progdiff::sample::Denoiser; it needs "
                "Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const std::int64_t> timesteps) "
                "(one timestep per sample) and PredictionType prediction_type() const "
                "(see progdiff/sample/denoiser.hpp)");
  return true;
}

}  // namespace progdiff::sample

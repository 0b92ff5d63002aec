#pragma once
// The Sampler concept and the per-sample state every sampler advances.
//
// A sampler describes its trajectory as model evaluations e = 0 .. evaluations() - 1. For
// each it says how to call the model (ModelCall: input scale and timestep) and how to update
// (StepWeights: the new sample and the new history buffers as weighted sums of the terms
// sample, model output, noise, history 0..2). Coefficients are doubles and depend only on e
// and the prediction type, so the samples of one batch may sit at different evaluations:
// sample n's update uses the weights of its own e[n] (see stepper.hpp).
#include <array>
#include <concepts>
#include <cstdint>
#include <vector>

#include "progdiff/core/tensor.hpp"
#include "progdiff/sample/denoiser.hpp"

namespace progdiff::sample {

/// The model is called on input_scale * x at `timestep`.
struct ModelCall {
  double input_scale = 1.0;
  double timestep = 0.0;
};

/// Positions of the update terms in a weight row.
enum Term : int { kSampleTerm = 0, kOutputTerm = 1, kNoiseTerm = 2, kHistoryTerm = 3 };
inline constexpr int kTermCount = 6;
inline constexpr int kMaxHistory = kTermCount - kHistoryTerm;

using TermWeights = std::array<double, kTermCount>;

/// One evaluation's update: new sample and new history buffers, each sum_k w[k] * term_k.
struct StepWeights {
  TermWeights x{};
  std::array<TermWeights, kMaxHistory> history{};
  bool noise = false;  // whether the noise term is used (then it is drawn)
};

/// Weights that keep buffer `term` as it is.
inline TermWeights keep(int term) {
  TermWeights w{};
  w[static_cast<std::size_t>(term)] = 1.0;
  return w;
}

/// x0 (or epsilon) as a linear function of the sample and the model output.
struct LinearPrediction {
  double sample = 0.0, output = 0.0;
};

/// Adds `scale` times the prediction to a weight row.
inline void add_prediction(TermWeights& w, double scale, LinearPrediction p) {
  w[kSampleTerm] += scale * p.sample;
  w[kOutputTerm] += scale * p.output;
}

// clang-format off
template <class S>
concept Sampler = requires(const S& s, std::int64_t e, PredictionType p) {
  { s.evaluations() } -> std::convertible_to<std::int64_t>;  // model calls of a whole trajectory
  { s.history_size() } -> std::convertible_to<int>;          // history buffers per sample (<= 3)
  { s.initial_scale() } -> std::convertible_to<double>;      // x_T = initial_scale * N(0, I)
  { s.model_call(e) } -> std::same_as<ModelCall>;
  { s.weights(e, p) } -> std::same_as<StepWeights>;
};
// clang-format on

template <class S>
constexpr bool check_sampler() {
  static_assert(Sampler<S>,
                "progdiff: the type does not satisfy progdiff::sample::Sampler; it needs evaluations(), "
                "history_size(), initial_scale(), model_call(e) and weights(e, prediction) "
                "(see progdiff/sample/sampler.hpp)");
  return true;
}

/// A batch in flight: the samples, each one's next evaluation, its noise identity, and the
/// sampler's history buffers (same shape as x, zero until written).
template <class T, class B>
struct SamplerState {
  Tensor<T, B> x;
  std::vector<std::int64_t> evaluation;
  std::vector<std::uint64_t> ids;
  std::vector<Tensor<T, B>> history;
  std::uint64_t seed = 0;

  std::int64_t batch() const { return static_cast<std::int64_t>(evaluation.size()); }
};

}  // namespace progdiff::sample

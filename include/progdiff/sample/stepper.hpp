#pragma once
// Running any Sampler with any Denoiser: start a batch from Philox noise (or from a given
// x_T), evaluate the model once per step, and apply each sample's own update weights
// through the back end's weighted_sum kernel. A sample whose trajectory is finished while
// others in its batch are not keeps its value.
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/sample/denoiser.hpp"
#include "progdiff/sample/noise.hpp"
#include "progdiff/sample/sampler.hpp"

namespace progdiff::sample {

namespace detail {

template <class T, class B>
std::int64_t per_sample(const Tensor<T, B>& x, const char* who) {
  require<ShapeError>(x.rank() >= 1 && x.dim(0) >= 1,
                      std::string(who) + ": expected a batch [N, ...] with N >= 1, got shape " + x.shape().str());
  return x.numel() / x.dim(0);
}

/// out = per-sample weighted sum of the terms; rows[n] holds sample n's weights.
template <class T, class B>
Tensor<T, B> combine(const std::vector<TermWeights>& rows, const std::array<const T*, kTermCount>& terms,
                     const Shape& shape) {
  const auto n = static_cast<std::int64_t>(rows.size());
  std::vector<double> w(rows.size() * kTermCount);
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (int k = 0; k < kTermCount; ++k) w[i * kTermCount + static_cast<std::size_t>(k)] = rows[i][k];
  const auto weights = Tensor<double, B>::from_host(Shape{n, kTermCount}, w);
  Tensor<T, B> out(shape);
  static_assert(B::sampler_terms == kTermCount, "progdiff: the back end's weighted_sum takes another term count");
  B::template weighted_sum<T>(n, shape.numel() / n, weights.data(), terms, out.data());
  return out;
}

}  // namespace detail

/// A batch at the evaluations `evaluation` (one per sample) of `sampler`, from the given
/// samples x; history buffers start at zero. ids name each sample's noise stream.
template <Sampler S, class T, class B>
SamplerState<T, B> resume(const S& sampler, Tensor<T, B> x, std::vector<std::int64_t> evaluation,
                          std::vector<std::uint64_t> ids, std::uint64_t seed) {
  static_assert(check_sampler<S>());
  detail::per_sample(x, "sample::resume");
  const auto n = x.dim(0);
  require<ShapeError>(static_cast<std::int64_t>(evaluation.size()) == n && static_cast<std::int64_t>(ids.size()) == n,
                      "sample::resume: " + std::to_string(evaluation.size()) + " evaluation indices and " +
                          std::to_string(ids.size()) + " sample ids for a batch of shape " + x.shape().str());
  for (auto e : evaluation)
    require(e >= 0 && e <= sampler.evaluations(), "sample::resume: evaluation index " + std::to_string(e) +
                                                      " outside [0, " + std::to_string(sampler.evaluations()) + "]");
  require(sampler.history_size() >= 0 && sampler.history_size() <= kMaxHistory,
          "sample::resume: a sampler may keep at most 3 history buffers");
  SamplerState<T, B> st;
  st.x = std::move(x);
  st.evaluation = std::move(evaluation);
  st.ids = std::move(ids);
  st.seed = seed;
  for (int k = 0; k < sampler.history_size(); ++k) st.history.push_back(Tensor<T, B>::zeros(st.x.shape()));
  return st;
}

/// A fresh batch of `shape` (N = shape[0]): x_T = initial_scale * Philox noise of samples
/// first_id .. first_id + N - 1, every sample at evaluation 0.
template <Sampler S, class T = float, class B = backend::Cpu>
SamplerState<T, B> start(const S& sampler, Shape shape, std::uint64_t seed, std::uint64_t first_id = 0) {
  require<ShapeError>(shape.rank() >= 1 && shape[0] >= 1 && shape.numel() > 0,
                      "sample::start: expected a non-empty batch shape [N, ...], got " + shape.str());
  const auto n = static_cast<std::size_t>(shape[0]);
  std::vector<std::uint64_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = first_id + i;
  Tensor<T, B> z(shape);
  draw_sample_noise(z, seed, ids, 0);
  TermWeights w{};
  w[kSampleTerm] = sampler.initial_scale();
  std::array<const T*, kTermCount> terms{};
  terms[kSampleTerm] = z.data();
  auto x = detail::combine<T, B>(std::vector<TermWeights>(n, w), terms, shape);
  return resume(sampler, std::move(x), std::vector<std::int64_t>(n, 0), std::move(ids), seed);
}

inline bool finished(std::span<const std::int64_t> evaluation, std::int64_t total) {
  for (auto e : evaluation)
    if (e < total) return false;
  return true;
}

/// The model calls of the state's samples (a finished sample repeats its last call).
template <Sampler S, class T, class B>
std::vector<ModelCall> model_calls(const S& sampler, const SamplerState<T, B>& st) {
  std::vector<ModelCall> calls;
  const std::int64_t last = sampler.evaluations() - 1;
  for (auto e : st.evaluation) calls.push_back(sampler.model_call(e < last ? e : last));
  return calls;
}

/// Applies each sample's update for its current evaluation, given the model output on the
/// state's model input, then moves every unfinished sample to its next evaluation. The noise
/// is drawn from the samples' Philox streams unless `noise` (shaped like x) is given.
template <Sampler S, class T, class B>
void step(const S& sampler, SamplerState<T, B>& st, const Tensor<T, B>& output, PredictionType prediction,
          const Tensor<T, B>* noise_override = nullptr) {
  expect_shape(output.shape(), st.x.shape(), "sample::step: model output");
  if (noise_override) expect_shape(noise_override->shape(), st.x.shape(), "sample::step: noise");
  const std::int64_t total = sampler.evaluations();
  const auto n = static_cast<std::size_t>(st.batch());
  const int h = sampler.history_size();
  std::vector<StepWeights> w(n);
  bool noise = false;
  for (std::size_t i = 0; i < n; ++i) {
    if (st.evaluation[i] >= total) {  // finished: keep everything
      w[i].x = keep(kSampleTerm);
      for (int k = 0; k < h; ++k) w[i].history[static_cast<std::size_t>(k)] = keep(kHistoryTerm + k);
    } else {
      w[i] = sampler.weights(st.evaluation[i], prediction);
      noise = noise || w[i].noise;
    }
  }
  std::array<const T*, kTermCount> terms{};
  terms[kSampleTerm] = st.x.data();
  terms[kOutputTerm] = output.data();
  Tensor<T, B> z;
  if (noise && noise_override) {
    terms[kNoiseTerm] = noise_override->data();
  } else if (noise) {
    z = Tensor<T, B>(st.x.shape());
    // every sample draws the noise of its own evaluation, so batches never share draws
    std::vector<std::uint64_t> draws(n);
    for (std::size_t i = 0; i < n; ++i) draws[i] = static_cast<std::uint64_t>(st.evaluation[i]) + 1;
    draw_sample_noise(z, st.seed, std::span<const std::uint64_t>(st.ids), std::span<const std::uint64_t>(draws));
    terms[kNoiseTerm] = z.data();
  }
  for (int k = 0; k < h; ++k) terms[static_cast<std::size_t>(kHistoryTerm + k)] = st.history[k].data();

  std::vector<TermWeights> rows(n);
  std::vector<Tensor<T, B>> history(static_cast<std::size_t>(h));
  for (int k = 0; k < h; ++k) {
    for (std::size_t i = 0; i < n; ++i) rows[i] = w[i].history[static_cast<std::size_t>(k)];
    history[static_cast<std::size_t>(k)] = detail::combine<T, B>(rows, terms, st.x.shape());
  }
  for (std::size_t i = 0; i < n; ++i) rows[i] = w[i].x;
  st.x = detail::combine<T, B>(rows, terms, st.x.shape());
  st.history = std::move(history);
  for (auto& e : st.evaluation)
    if (e < total) ++e;
}

/// The model's output for the state's samples at their current evaluations.
template <Sampler S, class D, class T, class B>
Tensor<T, B> evaluate(const S& sampler, D& denoiser, const SamplerState<T, B>& st) {
  static_assert(check_denoiser<D, T, B>());
  const auto calls = model_calls(sampler, st);
  bool unit = true;
  for (const auto& c : calls) unit = unit && c.input_scale == 1.0;
  Tensor<T, B> input = st.x;
  if (!unit) {
    std::vector<TermWeights> rows;
    for (const auto& c : calls) rows.push_back(TermWeights{c.input_scale});
    std::array<const T*, kTermCount> terms{};
    terms[kSampleTerm] = st.x.data();
    input = detail::combine<T, B>(rows, terms, st.x.shape());
  }
  // No sampler calls backward: the denoiser runs in inference mode and keeps no activations.
  const InferenceMode inference;
  Tensor<T, B> out;
  if constexpr (ContinuousDenoiser<D, T, B>) {
    std::vector<double> t;
    for (const auto& c : calls) t.push_back(c.timestep);
    out = denoiser.predict(input, std::span<const double>(t));
  } else {
    std::vector<std::int64_t> t;
    for (const auto& c : calls) t.push_back(static_cast<std::int64_t>(std::llround(c.timestep)));
    out = denoiser.predict(input, std::span<const std::int64_t>(t));
  }
  expect_shape(out.shape(), st.x.shape(), "sample::evaluate: the denoiser's output");
  return out;
}

/// One model evaluation and update of every unfinished sample of the batch.
template <Sampler S, class D, class T, class B>
void advance(const S& sampler, D& denoiser, SamplerState<T, B>& st) {
  const auto out = evaluate(sampler, denoiser, st);
  step(sampler, st, out, static_cast<PredictionType>(denoiser.prediction_type()));
}

/// Advances until every sample of the batch has finished its trajectory.
template <Sampler S, class D, class T, class B>
void run(const S& sampler, D& denoiser, SamplerState<T, B>& st) {
  while (!finished(st.evaluation, sampler.evaluations())) advance(sampler, denoiser, st);
}

/// Samples of `shape` from `denoiser`: deterministic for (seed, first_id) on any back end,
/// and sample first_id + n is the same whatever the batch it is generated in.
template <class T = float, class B = backend::Cpu, Sampler S, class D>
Tensor<T, B> generate(const S& sampler, D& denoiser, Shape shape, std::uint64_t seed, std::uint64_t first_id = 0) {
  static_assert(check_denoiser<D, T, B>());
  auto st = start<S, T, B>(sampler, shape, seed, first_id);
  run(sampler, denoiser, st);
  return st.x;
}

}  // namespace progdiff::sample

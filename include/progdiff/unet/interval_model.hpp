#pragma once
// IntervalModel: what a timestep-grouped denoiser offers the model layer, whether its intervals
// share an encoder (MultiDecoderUNet) or nothing (SeparateExperts): a forward pass routed by each
// sample's interval, backward, parameters, and costs per interval. model::IntervalRouted
// (progdiff/model/interval_routed.hpp) pairs one with the partition that maps timesteps to its
// intervals, for the trainers and samplers.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/tensor.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/nn/parameter.hpp"

namespace progdiff::unet {

// clang-format off
template <class M>
concept IntervalModel = requires(M& m, const M& cm, const Tensor<typename M::value_type, typename M::backend_type>& x,
                                 std::span<const std::int64_t> interval, Shape s, std::int64_t k,
                                 void (*f)(const std::string&, nn::Parameter<typename M::value_type, typename M::backend_type>&)) {
  { m.forward(x, x, interval) } -> std::same_as<Tensor<typename M::value_type, typename M::backend_type>>;
  { m.backward(x) } -> std::same_as<Tensor<typename M::value_type, typename M::backend_type>>;
  { cm.interval_count() } -> std::convertible_to<std::int64_t>;  // static where the type fixes it
  { cm.flops(s, k) } -> std::convertible_to<std::int64_t>;
  { cm.parameter_count() } -> std::convertible_to<std::int64_t>;
  { cm.parameter_count(k) } -> std::convertible_to<std::int64_t>;
  m.visit_parameters(f, std::string());
};
// clang-format on

/// FLOPs per sample averaged over timesteps, as the papers report a grouped model's cost:
/// sum_k fraction_k * flops_k, where fraction_k is the share of timesteps in interval k
/// (ConfigError unless the fractions are non-negative and sum to 1).
inline double average_flops(const std::vector<std::int64_t>& flops_per_interval, const std::vector<double>& fractions) {
  require(flops_per_interval.size() == fractions.size(), "average_flops: " + std::to_string(flops_per_interval.size()) +
                                                             " FLOPs counts for " + std::to_string(fractions.size()) +
                                                             " fractions");
  double sum = 0.0, avg = 0.0;
  for (std::size_t k = 0; k < fractions.size(); ++k) {
    require(fractions[k] >= 0.0, "average_flops: fraction " + std::to_string(k) + " is negative");
    sum += fractions[k];
    avg += fractions[k] * static_cast<double>(flops_per_interval[k]);
  }
  require(std::abs(sum - 1.0) <= 1e-9, "average_flops: the fractions sum to " + std::to_string(sum) + ", not 1");
  return avg;
}

/// The share of timesteps in each group of a partition.
inline std::vector<double> interval_fractions(const group::Partition& p) {
  std::vector<double> f;
  for (std::int64_t g = 0; g < p.groups(); ++g)
    f.push_back(static_cast<double>(p.end(g) - p.begin(g)) / static_cast<double>(p.size()));
  return f;
}

/// Per-sample FLOPs of every interval of `model` for images of shape `image` ([1, C, S, S]).
template <IntervalModel M>
std::vector<std::int64_t> flops_per_interval(const M& model, const Shape& image) {
  std::vector<std::int64_t> f;
  for (std::int64_t k = 0; k < model.interval_count(); ++k) f.push_back(model.flops(image, k));
  return f;
}

}  // namespace progdiff::unet

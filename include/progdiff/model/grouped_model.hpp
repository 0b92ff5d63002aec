#pragma once
// GroupedModel: what the trainers (train/trainer.hpp) and the samplers ask of a timestep-grouped
// denoiser. Each training timestep belongs to one group of a group::Partition; a batch may mix
// groups, and each sample is routed to its group's part of the model.
//
//   forward(x, timesteps)         routes sample i by partition().group_of(timesteps[i])
//   backward(dy)                  dx; accumulates the gradients of the parts the forward used
//   predict(x, timesteps)         sample::Denoiser: forward in evaluation mode, no cache kept
//   visit_parameters(f, prefix)   every parameter, once
//   visit_group_parameters(k, f, prefix)  the parameters only group k uses
//   shares_parameters             true when groups also use common parameters (a shared encoder)
//   flops(image, k), average_flops(image), describe(): costs and a checkpoint description
//
// model::Progressive (one denoiser per group) and model::IntervalRouted (a unet::IntervalModel:
// shared encoder with one decoder per group, or separate experts) satisfy it.
#include <concepts>
#include <cstdint>
#include <span>
#include <string>

#include "progdiff/core/tensor.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/model/description.hpp"
#include "progdiff/nn/parameter.hpp"
#include "progdiff/schedule/prediction_type.hpp"

namespace progdiff::model {

// clang-format off
template <class M>
concept GroupedModel = requires(M& m, const M& cm, const Tensor<typename M::value_type, typename M::backend_type>& x,
                                std::span<const std::int64_t> t, const Shape& s, std::int64_t k, bool flag,
                                void (*f)(const std::string&, nn::Parameter<typename M::value_type, typename M::backend_type>&)) {
  { m.forward(x, t) } -> std::same_as<Tensor<typename M::value_type, typename M::backend_type>>;
  { m.backward(x) } -> std::same_as<Tensor<typename M::value_type, typename M::backend_type>>;
  { m.predict(x, t) } -> std::same_as<Tensor<typename M::value_type, typename M::backend_type>>;
  { cm.prediction_type() } -> std::convertible_to<schedule::PredictionType>;
  { cm.partition() } -> std::convertible_to<const group::Partition&>;
  { cm.group_count() } -> std::convertible_to<std::int64_t>;
  { cm.flops(s, k) } -> std::convertible_to<std::int64_t>;
  { cm.describe() } -> std::convertible_to<Description>;
  { M::shares_parameters } -> std::convertible_to<bool>;
  m.set_training(flag);
  m.visit_parameters(f, std::string());
  m.visit_group_parameters(k, f, std::string());
};
// clang-format on

template <class M>
constexpr bool check_grouped_model() {
  static_assert(GroupedModel<M>,
                "progdiff: the model type is not a progdiff::model::GroupedModel; it needs forward(x, timesteps), "
                "backward(dy), predict(x, timesteps), prediction_type(), partition(), group_count(), "
                "flops(shape, group), describe(), set_training(bool), visit_parameters(f, prefix), "
                "visit_group_parameters(group, f, prefix) and a static bool shares_parameters "
                "(see progdiff/model/grouped_model.hpp)");
  return true;
}

/// A partition of `timesteps` grid indices into one group.
inline group::Partition single_group(std::int64_t timesteps) {
  require(timesteps >= 1, "single_group: the schedule needs at least one timestep, got " + std::to_string(timesteps));
  return group::Partition{{0, timesteps}, {}};
}

/// "0,250,1000": the partition's group starts and its end.
inline std::string starts_label(const group::Partition& p) {
  std::string s;
  for (std::size_t i = 0; i < p.starts.size(); ++i) {
    if (i) s += ',';  // appended separately: GCC 12 warns falsely on ("," + string) (-Wrestrict)
    s += std::to_string(p.starts[i]);
  }
  return s;
}

/// The integer timesteps as a [N] tensor for a network's forward.
template <class T, class B>
Tensor<T, B> timestep_tensor(std::span<const std::int64_t> t) {
  std::vector<T> v(t.begin(), t.end());
  return Tensor<T, B>::from_host(Shape{static_cast<std::int64_t>(v.size())}, v);
}

}  // namespace progdiff::model

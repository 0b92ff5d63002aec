#pragma once
// Whether a model predicts a variance besides its mean (unet::LearnedVariance), read from its
// type so that a loss or sampler that needs 2C outputs refuses a C-output model at compile time:
//   a U-Net type                 its Spec's learned_variance
//   Progressive<Net>             Net's (through net_type)
//   IntervalRouted<M>            M's (through inner_type)
//   SeparateExperts<Net, K>      Net's
//   any other model              its static constexpr bool learns_variance, false without one
#include <type_traits>

#include "progdiff/core/shape.hpp"

namespace progdiff::unet {

template <class Net, int K>
class SeparateExperts;

template <class M>
struct learns_variance;

namespace detail {
template <class M>
constexpr bool learns_variance_of() {
  if constexpr (requires { M::spec::learned_variance; })
    return M::spec::learned_variance;
  else if constexpr (requires { typename M::net_type; })
    return learns_variance<typename M::net_type>::value;
  else if constexpr (requires { typename M::inner_type; })
    return learns_variance<typename M::inner_type>::value;
  else if constexpr (requires { M::learns_variance; })
    return static_cast<bool>(M::learns_variance);
  else
    return false;
}
}  // namespace detail

template <class M>
struct learns_variance : std::bool_constant<detail::learns_variance_of<std::remove_cvref_t<M>>()> {};

template <class Net, int K>
struct learns_variance<SeparateExperts<Net, K>> : learns_variance<Net> {};

template <class M>
inline constexpr bool learns_variance_v = learns_variance<M>::value;

/// The shape of M's output for an input of shape `in` ([N, C, ...]): 2C channels when M learns
/// a variance, else `in`. What a routed model allocates before it scatters its groups' outputs.
template <class M>
Shape output_shape_of(Shape in) {
  if constexpr (learns_variance_v<M>) in[1] *= 2;
  return in;
}

}  // namespace progdiff::unet

#pragma once
#include <string>

#include "progdiff/core/tensor.hpp"

namespace progdiff::nn {

/// A trainable tensor and its gradient. Backward passes accumulate into `grad`;
/// the optimizer reads it and zero_grad() clears it.
template <class T, class B>
struct Parameter {
  Tensor<T, B> value;
  Tensor<T, B> grad;

  Parameter() = default;
  explicit Parameter(Shape shape) : value(Tensor<T, B>::zeros(shape)), grad(Tensor<T, B>::zeros(shape)) {}

  std::int64_t numel() const { return value.numel(); }
  void zero_grad() { grad.zero(); }
};

/// How a parameter's axes map to the layer's channels, for the structural pruner:
/// removing output channel j removes index j along `out_axis`, input channel i along `in_axis`
/// (-1: the parameter has no such axis).
struct ParameterAxes {
  std::string name;
  int out_axis = -1;
  int in_axis = -1;
};

/// The channel axes a layer consumes and produces (axis 1 of NCHW or of [N, F]).
struct ChannelAxes {
  std::int64_t in_channels = 0;
  std::int64_t out_channels = 0;
  std::vector<ParameterAxes> parameters;
};

/// Joins a prefix and a name with a dot, as parameter names of nested layers read.
inline std::string scoped(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace progdiff::nn

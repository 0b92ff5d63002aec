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

/// Joins a prefix and a name with a dot, as parameter names of nested layers read.
inline std::string scoped(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace progdiff::nn

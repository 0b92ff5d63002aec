#pragma once
#include <string>

#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/nn/layer.hpp"

namespace progdiff::nn {

/// y = x * sigmoid(x), any shape. No parameters; backward returns dx.
template <class T, class B>
class SiLU {
 public:
  using value_type = T;
  using backend_type = B;

  Shape output_shape(const Shape& in) const { return in; }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    Tensor<T, B> y(x.shape());
    B::silu_forward(x.size(), x.data(), y.data());
    keep_for_backward(input_, x);
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(!input_.empty(), "SiLU::backward called without a preceding forward outside inference mode");
    expect_shape(dy.shape(), input_.shape(), "SiLU::backward dy");
    Tensor<T, B> dx(dy.shape());
    B::silu_backward(dy.size(), input_.data(), dy.data(), dx.data());
    input_.reset();
    return dx;
  }

  /// Not a multiply-add: counted as zero, as the papers' FLOPs counts do.
  std::int64_t flops(const Shape&) const { return 0; }
  std::int64_t parameter_count() const { return 0; }
  template <class F>
  void visit_parameters(F&&, const std::string&) {}

 private:
  Tensor<T, B> input_;
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class SiLU<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

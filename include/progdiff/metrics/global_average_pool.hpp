#pragma once
#include <string>

#include "progdiff/core/precompiled.hpp"
#include "progdiff/nn/layer.hpp"

namespace progdiff::metrics {

/// Mean over the spatial axes, as torch.nn.AdaptiveAvgPool2d(1) followed by flatten(1).
/// x: [N, C, H, W] -> y: [N, C]. No parameters; backward spreads dy / (H W) over every position.
/// Built on the channel kernels the U-Net's timestep injection uses (sample_channel_sum and
/// add_sample_channel), so it runs on every back end.
template <class T, class B>
class GlobalAveragePool {
 public:
  using value_type = T;
  using backend_type = B;

  Shape output_shape(const Shape& in) const {
    expect_nchw(in, "GlobalAveragePool");
    return Shape{in[0], in[1]};
  }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    const Shape out = output_shape(x.shape());
    const std::int64_t hw = x.dim(2) * x.dim(3);
    require<ShapeError>(hw > 0, "GlobalAveragePool: empty spatial extent in input shape " + x.shape().str());
    Tensor<T, B> y(out);
    B::template sample_channel_sum<T>(out[0], out[1], hw, x.data(), y.data());
    B::template scale<T>(y.size(), static_cast<T>(1.0 / static_cast<double>(hw)), y.data());
    input_shape_ = x.shape();
    has_input_ = true;
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(has_input_, "GlobalAveragePool::backward called without a preceding forward");
    expect_shape(dy.shape(), output_shape(input_shape_), "GlobalAveragePool::backward dy");
    const std::int64_t hw = input_shape_[2] * input_shape_[3];
    auto dx = Tensor<T, B>::zeros(input_shape_);
    B::template add_sample_channel<T>(input_shape_[0], input_shape_[1], hw, dy.data(), dx.data());
    B::template scale<T>(dx.size(), static_cast<T>(1.0 / static_cast<double>(hw)), dx.data());
    has_input_ = false;
    return dx;
  }

  /// Additions only: counted as zero, as the convolution-and-linear FLOPs counts of the papers do.
  std::int64_t flops(const Shape&) const { return 0; }
  std::int64_t parameter_count() const { return 0; }
  template <class F>
  void visit_parameters(F&&, const std::string&) {}

 private:
  Shape input_shape_;
  bool has_input_ = false;
};

}  // namespace progdiff::metrics

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::metrics {
extern template class GlobalAveragePool<float, backend::Cpu>;
}  // namespace progdiff::metrics
#endif

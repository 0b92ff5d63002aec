#pragma once
#include <string>

#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/layer.hpp"

namespace progdiff::nn {

struct UpsampleConfig {
  std::int64_t in_channels = 64;
  std::int64_t out_channels = 64;
};

/// Doubles the resolution, the Upsample(with_conv=True) of DDPM: nearest-neighbour x2
/// (torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")) then
/// torch.nn.Conv2d(C_in, C_out, 3, padding=1).
/// x: [N, C_in, H, W] -> u: [N, C_in, 2H, 2W] -> y: [N, C_out, 2H, 2W];
/// conv.weight: [C_out, C_in, 3, 3], conv.bias: [C_out].
/// backward returns dx (each input pixel collects the gradient of its four copies) and
/// accumulates the convolution's gradients.
template <class T, class B>
class Upsample {
 public:
  using value_type = T;
  using backend_type = B;

  Upsample() = default;
  explicit Upsample(UpsampleConfig config)
      : config_(config), conv_(Conv2dConfig{config.in_channels, config.out_channels, 3, 1, 1, true}) {}

  /// PyTorch's default for the convolution.
  void initialize(Generator& gen) { conv_.initialize(gen); }

  const UpsampleConfig& config() const { return config_; }
  Conv2d<T, B>& conv() { return conv_; }

  Shape output_shape(const Shape& in) const { return conv_.output_shape(upsampled(in)); }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    Tensor<T, B> u(upsampled(x.shape()));
    B::upsample_nearest2x_forward(x.dim(0) * x.dim(1), x.dim(2), x.dim(3), x.data(), u.data());
    Tensor<T, B> y = conv_.forward(u);
    input_shape_ = x.shape();
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(input_shape_.rank() == 4, "Upsample::backward called without a preceding forward");
    expect_shape(dy.shape(), output_shape(input_shape_), "Upsample::backward dy");
    const Tensor<T, B> du = conv_.backward(dy);
    Tensor<T, B> dx(input_shape_);
    B::upsample_nearest2x_backward(dx.dim(0) * dx.dim(1), dx.dim(2), dx.dim(3), du.data(), dx.data());
    input_shape_ = Shape{};
    return dx;
  }

  /// The convolution at the doubled resolution; the copy is not a multiply-add.
  std::int64_t flops(const Shape& in) const { return conv_.flops(upsampled(in)); }
  std::int64_t parameter_count() const { return conv_.parameter_count(); }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    conv_.visit_parameters(f, scoped(prefix, "conv"));
  }

 private:
  Shape upsampled(const Shape& in) const {
    if (in.rank() != 4 || in[1] != config_.in_channels)
      throw ShapeError("Upsample: got input shape " + in.str() + ", expected [N, " +
                       std::to_string(config_.in_channels) + ", H, W]");
    return Shape{in[0], in[1], 2 * in[2], 2 * in[3]};
  }

  UpsampleConfig config_;
  Conv2d<T, B> conv_;
  Shape input_shape_;
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class Upsample<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

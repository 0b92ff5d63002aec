#pragma once
#include <string>

#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/layer.hpp"

namespace progdiff::nn {

struct DownsampleConfig {
  std::int64_t in_channels = 64;
  std::int64_t out_channels = 64;
};

/// Halves the resolution with a learned 3x3 convolution of stride 2 and padding 1, the
/// Downsample(with_conv=True) of DDPM as its PyTorch ports write it (torch.nn.Conv2d(C_in,
/// C_out, 3, stride=2, padding=1); DDPM's TensorFlow original pads asymmetrically instead).
/// x: [N, C_in, H, W] -> y: [N, C_out, ceil(H/2), ceil(W/2)]; conv.weight: [C_out, C_in, 3, 3],
/// conv.bias: [C_out]. backward returns dx and accumulates the convolution's gradients.
template <class T, class B>
class Downsample {
 public:
  using value_type = T;
  using backend_type = B;

  Downsample() = default;
  explicit Downsample(DownsampleConfig config)
      : config_(config), conv_(Conv2dConfig{config.in_channels, config.out_channels, 3, 2, 1, true}) {}

  /// PyTorch's default for the convolution.
  void initialize(Generator& gen) { conv_.initialize(gen); }

  const DownsampleConfig& config() const { return config_; }
  Conv2d<T, B>& conv() { return conv_; }

  Shape output_shape(const Shape& in) const { return conv_.output_shape(in); }
  Tensor<T, B> forward(const Tensor<T, B>& x) { return conv_.forward(x); }
  Tensor<T, B> backward(const Tensor<T, B>& dy) { return conv_.backward(dy); }

  std::int64_t flops(const Shape& in) const { return conv_.flops(in); }
  std::int64_t parameter_count() const { return conv_.parameter_count(); }
  ChannelAxes channel_axes() const {
    return {config_.in_channels, config_.out_channels, {{"conv.weight", 0, 1}, {"conv.bias", 0, -1}}};
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    conv_.visit_parameters(f, scoped(prefix, "conv"));
  }

 private:
  DownsampleConfig config_;
  Conv2d<T, B> conv_;
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class Downsample<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

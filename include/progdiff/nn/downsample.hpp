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
  std::int64_t padding = 1;  // 1: one zero row/column on every side; 0: one at the end only (DDPM's original)
};

/// Halves the resolution with a learned 3x3 convolution of stride 2 and padding 1, the
/// Downsample(with_conv=True) of DDPM as its PyTorch ports write it (torch.nn.Conv2d(C_in,
/// C_out, 3, stride=2, padding=1); DDPM's TensorFlow original pads asymmetrically instead).
/// x: [N, C_in, H, W] -> y: [N, C_out, ceil(H/2), ceil(W/2)]; conv.weight: [C_out, C_in, 3, 3],
/// conv.bias: [C_out]. backward returns dx and accumulates the convolution's gradients.
/// padding = 0 is the TensorFlow original (and diffusers' downsample_padding = 0, the setting of
/// its DDPM checkpoints): one zero row at the bottom and one zero column at the right, then the
/// convolution without padding; y: [N, C_out, floor(H/2), floor(W/2)]. The taps sit one pixel
/// lower and further right than with padding 1, so the two are different functions of the weights.
template <class T, class B>
class Downsample {
 public:
  using value_type = T;
  using backend_type = B;

  Downsample() = default;
  explicit Downsample(DownsampleConfig config)
      : config_(config), conv_(Conv2dConfig{config.in_channels, config.out_channels, 3, 2, config.padding, true}) {
    require(config.padding == 0 || config.padding == 1,
            "Downsample: padding must be 1 (symmetric) or 0 (one zero row and column at the end), got " +
                std::to_string(config.padding));
  }

  /// PyTorch's default for the convolution.
  void initialize(Generator& gen) { conv_.initialize(gen); }

  const DownsampleConfig& config() const { return config_; }
  Conv2d<T, B>& conv() { return conv_; }

  Shape output_shape(const Shape& in) const { return conv_.output_shape(padded_shape(in)); }
  Tensor<T, B> forward(const Tensor<T, B>& x) { return conv_.forward(config_.padding == 0 ? pad_end(x) : x); }
  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    const Tensor<T, B> dx = conv_.backward(dy);
    return config_.padding == 0 ? crop_end(dx) : dx;
  }

  std::int64_t flops(const Shape& in) const { return conv_.flops(padded_shape(in)); }
  std::int64_t parameter_count() const { return conv_.parameter_count(); }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    conv_.visit_parameters(f, scoped(prefix, "conv"));
  }

 private:
  Shape padded_shape(const Shape& in) const {
    if (config_.padding != 0 || in.rank() != 4) return in;
    return Shape{in[0], in[1], in[2] + 1, in[3] + 1};
  }
  // [N, C, H, W] -> [N, C, H + 1, W + 1] with a zero last row and column: rows widen, then planes.
  static Tensor<T, B> pad_end(const Tensor<T, B>& x) {
    const std::int64_t nc = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
    Tensor<T, B> rows = Tensor<T, B>::zeros(Shape{nc, h, w + 1});
    B::template copy_2d<T>(nc * h, w, x.data(), w, rows.data(), w + 1);
    Tensor<T, B> out = Tensor<T, B>::zeros(Shape{x.dim(0), x.dim(1), h + 1, w + 1});
    B::template copy_2d<T>(nc, h * (w + 1), rows.data(), h * (w + 1), out.data(), (h + 1) * (w + 1));
    return out;
  }
  // The gradient of pad_end: drops the last row and column.
  static Tensor<T, B> crop_end(const Tensor<T, B>& d) {
    const std::int64_t nc = d.dim(0) * d.dim(1), h = d.dim(2) - 1, w = d.dim(3) - 1;
    Tensor<T, B> rows(Shape{nc, h, w + 1});
    B::template copy_2d<T>(nc, h * (w + 1), d.data(), (h + 1) * (w + 1), rows.data(), h * (w + 1));
    Tensor<T, B> out(Shape{d.dim(0), d.dim(1), h, w});
    B::template copy_2d<T>(nc * h, w, rows.data(), w + 1, out.data(), w);
    return out;
  }

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

#pragma once
#include <cmath>
#include <string>

#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/dropout.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/layer.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/silu.hpp"

namespace progdiff::nn {

/// Where a ResBlock changes the resolution (BigGAN, Brock et al. 2019; DDPM++'s ResnetBlockBigGAN).
enum class Resample {
  None,
  Down,  // 2x2 average pooling: H x W -> H/2 x W/2 (H and W even)
  Up,    // nearest-neighbour x2: H x W -> 2H x 2W
};

struct ResBlockConfig {
  std::int64_t in_channels = 64;
  std::int64_t out_channels = 64;
  std::int64_t temb_channels = 256;
  std::int64_t groups = 32;
  double eps = 1e-6;       // DDPM's GroupNorm epsilon
  double dropout = 0.0;    // drop probability before conv2
  std::uint64_t seed = 0;  // dropout mask seed; initialize() draws a fresh one
  Resample resample = Resample::None;
  bool skip_rescale = false;  // DDPM++: y = (skip(x) + h) / sqrt(2), so the variance does not grow with depth
  bool scale_shift = false;   // IDDPM: temb_proj gives [scale, shift] (2 C_out) applied after norm2
};

/// The gradients a ResBlock returns: input image and time embedding.
template <class T, class B>
struct ResBlockGrads {
  Tensor<T, B> dx;     // [N, C_in, H, W]
  Tensor<T, B> dtemb;  // [N, temb_channels]
};

/// The residual block of DDPM (Ho et al. 2020, ResnetBlock) and DDPM++ (Song et al. 2021,
/// ResnetBlockDDPM), with GroupNorm, SiLU (swish) and an additive time embedding:
///
///   x [N, C_in, H, W], temb [N, E]
///   h  = conv1(SiLU(norm1(x)))              norm1: gamma/beta [C_in]; conv1: 3x3 pad 1,
///                                           weight [C_out, C_in, 3, 3], bias [C_out]
///   h += temb_proj(SiLU(temb))[:, :, None, None]   temb_proj: weight [C_out, E], bias [C_out]
///   h  = conv2(Dropout(SiLU(norm2(h))))     norm2: [C_out]; conv2: weight [C_out, C_out, 3, 3]
///   y  = skip(x) + h                        skip: 1x1 conv, weight [C_out, C_in, 1, 1], bias
///                                           [C_out], when C_in != C_out; identity otherwise
///   y [N, C_out, H, W]
///
/// Options of the config, each off by default:
///   resample Down / Up (BigGAN-style resampling, DDPM++'s ResnetBlockBigGAN): SiLU(norm1(x))
///     and the skip input x are both resampled (2x2 mean / nearest x2) before conv1 and the
///     skip convolution, which then always exists; y is [N, C_out, H/2, W/2] or [N, C_out, 2H, 2W];
///   skip_rescale: y = (skip(x) + h) / sqrt(2) (DDPM++);
///   scale_shift (IDDPM's use_scale_shift_norm): temb_proj has 2 C_out outputs [scale, shift];
///     instead of the addition before norm2, norm2(h) * (1 + scale) + shift feeds the SiLU.
///
/// forward(x, temb) keeps what backward needs; backward(dy) returns {dx, dtemb} and
/// accumulates every parameter gradient.
template <class T, class B>
class ResBlock {
 public:
  using value_type = T;
  using backend_type = B;

  ResBlock() = default;
  explicit ResBlock(ResBlockConfig config) : config_(config) {
    require(config.in_channels > 0 && config.out_channels > 0 && config.temb_channels > 0,
            "ResBlock: channel counts must be positive");
    require(config.groups > 0 && config.in_channels % config.groups == 0 && config.out_channels % config.groups == 0,
            "ResBlock: the group count " + std::to_string(config.groups) + " must divide both widths " +
                std::to_string(config.in_channels) + " and " + std::to_string(config.out_channels));
    const std::int64_t in = config.in_channels, out = config.out_channels;
    norm1_ = GroupNorm<T, B>(GroupNormConfig{config.groups, in, config.eps});
    conv1_ = Conv2d<T, B>(Conv2dConfig{in, out, 3, 1, 1, true});
    temb_proj_ = Linear<T, B>(LinearConfig{config.temb_channels, config.scale_shift ? 2 * out : out, true});
    norm2_ = GroupNorm<T, B>(GroupNormConfig{config.groups, out, config.eps});
    dropout_ = Dropout<T, B>(DropoutConfig{config.dropout, config.seed});
    conv2_ = Conv2d<T, B>(Conv2dConfig{out, out, 3, 1, 1, true});
    if (has_skip()) skip_ = Conv2d<T, B>(Conv2dConfig{in, out, 1, 1, 0, true});
  }

  /// PyTorch's defaults for every sublayer; the dropout seed is drawn from `gen` too.
  void initialize(Generator& gen) {
    norm1_.initialize(gen);
    conv1_.initialize(gen);
    temb_proj_.initialize(gen);
    norm2_.initialize(gen);
    conv2_.initialize(gen);
    if (has_skip()) skip_.initialize(gen);
    dropout_.initialize(gen);
  }

  const ResBlockConfig& config() const { return config_; }
  /// A 1x1 skip convolution: when the widths differ or the block resamples (DDPM++'s Conv_2).
  bool has_skip() const { return config_.in_channels != config_.out_channels || config_.resample != Resample::None; }
  void set_training(bool training) { dropout_.set_training(training); }
  GroupNorm<T, B>& norm1() { return norm1_; }
  Conv2d<T, B>& conv1() { return conv1_; }
  Linear<T, B>& temb_proj() { return temb_proj_; }
  GroupNorm<T, B>& norm2() { return norm2_; }
  Dropout<T, B>& dropout() { return dropout_; }
  Conv2d<T, B>& conv2() { return conv2_; }
  Conv2d<T, B>& skip() { return skip_; }

  Shape output_shape(const Shape& in) const {
    if (in.rank() != 4 || in[1] != config_.in_channels)
      throw ShapeError("ResBlock: got input shape " + in.str() + ", expected [N, " +
                       std::to_string(config_.in_channels) + ", H, W]");
    if (config_.resample == Resample::Down && (in[2] % 2 != 0 || in[3] % 2 != 0))
      throw ShapeError("ResBlock: a downsampling block needs even height and width, got " + in.str());
    const std::int64_t h = resampled(in[2]), w = resampled(in[3]);
    return Shape{in[0], config_.out_channels, h, w};
  }

  Tensor<T, B> forward(const Tensor<T, B>& x, const Tensor<T, B>& temb) {
    const Shape out_shape = output_shape(x.shape());
    expect_shape(temb.shape(), Shape{x.dim(0), config_.temb_channels}, "ResBlock temb");
    const std::int64_t n = x.dim(0), c = config_.out_channels, hw = out_shape[2] * out_shape[3];
    // GroupNorm + SiLU pairs run fused, and conv1 adds the time embedding (without scale_shift)
    // and conv2 the skip as they store their outputs, where the back end can.
    const Tensor<T, B> e = temb_proj_.forward(silu_temb_.forward(temb));
    // conv1's input, made where conv1 reads it so that inference frees it right after.
    const auto conv1_input = [&] { return resample(norm1_.forward_silu(x, silu1_)); };
    Tensor<T, B> a2;
    if (config_.scale_shift) {
      // g = norm2(h) * (1 + scale) + shift; the normalized h and 1 + scale stay for backward.
      const Tensor<T, B> h = conv1_.forward(conv1_input());
      normalized_ = norm2_.forward(h);
      one_plus_scale_ = Tensor<T, B>(Shape{n, c});
      B::template copy_2d<T>(n, c, e.data(), 2 * c, one_plus_scale_.data(), c);
      Tensor<T, B> ones(Shape{n, c});
      ones.fill(T(1));
      B::add(ones.size(), one_plus_scale_.data(), ones.data(), one_plus_scale_.data());
      Tensor<T, B> g = modulate(normalized_, one_plus_scale_);
      Tensor<T, B> shift(Shape{n, c});
      B::template copy_2d<T>(n, c, e.data() + c, 2 * c, shift.data(), c);
      B::add_sample_channel(n, c, hw, shift.data(), g.data());
      a2 = silu2_.forward(g);
    } else {
      a2 = norm2_.forward_silu(conv1_.forward_adding(conv1_input(), e, Tensor<T, B>()), silu2_);
    }
    const Tensor<T, B> skip = has_skip() ? skip_.forward(config_.resample == Resample::None ? x : resample(x)) : x;
    Tensor<T, B> y = conv2_.forward_adding(dropout_.forward(a2), Tensor<T, B>(), skip);
    if (config_.skip_rescale) B::scale(y.size(), static_cast<T>(1 / std::sqrt(2.0)), y.data());
    output_shape_ = out_shape;
    return y;
  }

  ResBlockGrads<T, B> backward(const Tensor<T, B>& dy_in) {
    require(output_shape_.rank() == 4, "ResBlock::backward called without a preceding forward");
    expect_shape(dy_in.shape(), output_shape_, "ResBlock::backward dy");
    Tensor<T, B> dy = dy_in;
    if (config_.skip_rescale) {
      dy = dy_in.clone();
      B::scale(dy.size(), static_cast<T>(1 / std::sqrt(2.0)), dy.data());
    }
    const std::int64_t n = dy.dim(0), c = config_.out_channels, hw = dy.dim(2) * dy.dim(3);
    const Tensor<T, B> da2 = dropout_.backward(conv2_.backward(dy));
    Tensor<T, B> dh, de;
    if (config_.scale_shift) {
      const Tensor<T, B> dg = silu2_.backward(da2);
      // d scale = sum_hw dg * normalized, d shift = sum_hw dg, d normalized = dg * (1 + scale).
      de = Tensor<T, B>(Shape{n, 2 * c});
      Tensor<T, B> prod(dg.shape()), part(Shape{n, c});
      B::mul(dg.size(), dg.data(), normalized_.data(), prod.data());
      B::sample_channel_sum(n, c, hw, prod.data(), part.data());
      B::template copy_2d<T>(n, c, part.data(), c, de.data(), 2 * c);
      B::sample_channel_sum(n, c, hw, dg.data(), part.data());
      B::template copy_2d<T>(n, c, part.data(), c, de.data() + c, 2 * c);
      dh = norm2_.backward(modulate(dg, one_plus_scale_));
      normalized_ = Tensor<T, B>();
      one_plus_scale_ = Tensor<T, B>();
    } else {
      dh = norm2_.backward_silu(da2, silu2_);
      de = Tensor<T, B>(Shape{n, c});
      B::sample_channel_sum(n, c, hw, dh.data(), de.data());
    }
    ResBlockGrads<T, B> grads;
    grads.dtemb = silu_temb_.backward(temb_proj_.backward(de));
    grads.dx = norm1_.backward_silu(resample_backward(conv1_.backward(dh)), silu1_);
    if (has_skip()) {
      const Tensor<T, B> ds = resample_backward(skip_.backward(dy));
      B::add(grads.dx.size(), grads.dx.data(), ds.data(), grads.dx.data());
    } else {
      B::add(grads.dx.size(), grads.dx.data(), dy.data(), grads.dx.data());
    }
    output_shape_ = Shape{};
    return grads;
  }

  /// conv1, conv2, the skip convolution and the time projection (input [N, C_in, H, W]).
  /// With resampling, every convolution runs at the output resolution.
  std::int64_t flops(const Shape& in) const {
    const Shape out = output_shape(in);
    const Shape conv_in{in[0], in[1], out[2], out[3]};
    const std::int64_t e = config_.scale_shift ? 2 * config_.out_channels : config_.out_channels;
    std::int64_t f = conv1_.flops(conv_in) + conv2_.flops(out) + 2 * in[0] * config_.temb_channels * e;
    if (has_skip()) f += skip_.flops(conv_in);
    return f;
  }
  std::int64_t parameter_count() const {
    std::int64_t p = 2 * config_.in_channels + conv1_.parameter_count() + temb_proj_.parameter_count() +
                     2 * config_.out_channels + conv2_.parameter_count();
    if (has_skip()) p += skip_.parameter_count();
    return p;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    norm1_.visit_parameters(f, scoped(prefix, "norm1"));
    conv1_.visit_parameters(f, scoped(prefix, "conv1"));
    temb_proj_.visit_parameters(f, scoped(prefix, "temb_proj"));
    norm2_.visit_parameters(f, scoped(prefix, "norm2"));
    conv2_.visit_parameters(f, scoped(prefix, "conv2"));
    if (has_skip()) skip_.visit_parameters(f, scoped(prefix, "skip"));
  }
  /// The dropout layer, named "<prefix>.dropout": f(name, Dropout&).
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    dropout_.visit_random_state(f, scoped(prefix, "dropout"));
  }

 private:
  std::int64_t resampled(std::int64_t side) const {
    return config_.resample == Resample::Down ? side / 2 : config_.resample == Resample::Up ? 2 * side : side;
  }
  // The block's resampling of a [N, C, H, W] tensor. The 2x2 mean is the adjoint of the
  // nearest-neighbour copy divided by 4, so both directions use the upsampling kernels.
  Tensor<T, B> resample(const Tensor<T, B>& x) const {
    if (config_.resample == Resample::None) return x;
    const std::int64_t nc = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
    if (config_.resample == Resample::Up) {
      Tensor<T, B> u(Shape{x.dim(0), x.dim(1), 2 * h, 2 * w});
      B::upsample_nearest2x_forward(nc, h, w, x.data(), u.data());
      return u;
    }
    Tensor<T, B> d(Shape{x.dim(0), x.dim(1), h / 2, w / 2});
    B::upsample_nearest2x_backward(nc, h / 2, w / 2, x.data(), d.data());
    B::scale(d.size(), T(0.25), d.data());
    return d;
  }
  Tensor<T, B> resample_backward(const Tensor<T, B>& dy) const {
    if (config_.resample == Resample::None) return dy;
    const std::int64_t nc = dy.dim(0) * dy.dim(1), h = dy.dim(2), w = dy.dim(3);
    if (config_.resample == Resample::Up) {
      Tensor<T, B> dx(Shape{dy.dim(0), dy.dim(1), h / 2, w / 2});
      B::upsample_nearest2x_backward(nc, h / 2, w / 2, dy.data(), dx.data());
      return dx;
    }
    Tensor<T, B> dx(Shape{dy.dim(0), dy.dim(1), 2 * h, 2 * w});
    B::upsample_nearest2x_forward(nc, h, w, dy.data(), dx.data());
    B::scale(dx.size(), T(0.25), dx.data());
    return dx;
  }
  // x [N, C, H, W] times a per-sample, per-channel factor f [N, C].
  static Tensor<T, B> modulate(const Tensor<T, B>& x, const Tensor<T, B>& f) {
    const std::int64_t n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
    Tensor<T, B> out = Tensor<T, B>::zeros(x.shape());
    B::add_sample_channel(n, c, hw, f.data(), out.data());
    B::mul(out.size(), out.data(), x.data(), out.data());
    return out;
  }

  ResBlockConfig config_;
  GroupNorm<T, B> norm1_, norm2_;
  SiLU<T, B> silu1_, silu_temb_, silu2_;
  Conv2d<T, B> conv1_, conv2_, skip_;
  Linear<T, B> temb_proj_;
  Dropout<T, B> dropout_;
  Shape output_shape_;
  Tensor<T, B> normalized_, one_plus_scale_;  // scale_shift: norm2(h) and 1 + scale, for backward
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class ResBlock<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

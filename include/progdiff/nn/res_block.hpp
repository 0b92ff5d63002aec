#pragma once
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

struct ResBlockConfig {
  std::int64_t in_channels = 64;
  std::int64_t out_channels = 64;
  std::int64_t temb_channels = 256;
  std::int64_t groups = 32;
  double eps = 1e-6;       // DDPM's GroupNorm epsilon
  double dropout = 0.0;    // drop probability before conv2
  std::uint64_t seed = 0;  // dropout mask seed; initialize() draws a fresh one
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
    temb_proj_ = Linear<T, B>(LinearConfig{config.temb_channels, out, true});
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
  bool has_skip() const { return config_.in_channels != config_.out_channels; }
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
    return Shape{in[0], config_.out_channels, in[2], in[3]};
  }

  Tensor<T, B> forward(const Tensor<T, B>& x, const Tensor<T, B>& temb) {
    const Shape out_shape = output_shape(x.shape());
    expect_shape(temb.shape(), Shape{x.dim(0), config_.temb_channels}, "ResBlock temb");
    const std::int64_t n = x.dim(0), c = config_.out_channels, hw = x.dim(2) * x.dim(3);
    // conv1 keeps its input, not its output, so adding the embedding in place is safe.
    Tensor<T, B> h = conv1_.forward(silu1_.forward(norm1_.forward(x)));
    const Tensor<T, B> e = temb_proj_.forward(silu_temb_.forward(temb));
    B::add_sample_channel(n, c, hw, e.data(), h.data());
    Tensor<T, B> y = conv2_.forward(dropout_.forward(silu2_.forward(norm2_.forward(h))));
    if (has_skip()) {
      const Tensor<T, B> s = skip_.forward(x);
      B::add(y.size(), y.data(), s.data(), y.data());
    } else {
      B::add(y.size(), y.data(), x.data(), y.data());
    }
    output_shape_ = out_shape;
    return y;
  }

  ResBlockGrads<T, B> backward(const Tensor<T, B>& dy) {
    require(output_shape_.rank() == 4, "ResBlock::backward called without a preceding forward");
    expect_shape(dy.shape(), output_shape_, "ResBlock::backward dy");
    const std::int64_t n = dy.dim(0), c = config_.out_channels, hw = dy.dim(2) * dy.dim(3);
    const Tensor<T, B> dh = norm2_.backward(silu2_.backward(dropout_.backward(conv2_.backward(dy))));
    Tensor<T, B> de(Shape{n, c});
    B::sample_channel_sum(n, c, hw, dh.data(), de.data());
    ResBlockGrads<T, B> grads;
    grads.dtemb = silu_temb_.backward(temb_proj_.backward(de));
    grads.dx = norm1_.backward(silu1_.backward(conv1_.backward(dh)));
    if (has_skip()) {
      const Tensor<T, B> ds = skip_.backward(dy);
      B::add(grads.dx.size(), grads.dx.data(), ds.data(), grads.dx.data());
    } else {
      B::add(grads.dx.size(), grads.dx.data(), dy.data(), grads.dx.data());
    }
    output_shape_ = Shape{};
    return grads;
  }

  /// conv1, conv2, the skip convolution and the time projection (input [N, C_in, H, W]).
  std::int64_t flops(const Shape& in) const {
    const Shape out = output_shape(in);
    std::int64_t f = conv1_.flops(in) + conv2_.flops(out) + 2 * in[0] * config_.temb_channels * config_.out_channels;
    if (has_skip()) f += skip_.flops(in);
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
  ResBlockConfig config_;
  GroupNorm<T, B> norm1_, norm2_;
  SiLU<T, B> silu1_, silu_temb_, silu2_;
  Conv2d<T, B> conv1_, conv2_, skip_;
  Linear<T, B> temb_proj_;
  Dropout<T, B> dropout_;
  Shape output_shape_;
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class ResBlock<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

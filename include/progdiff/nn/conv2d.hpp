#pragma once
#include <cmath>
#include <string>

#include "progdiff/backend/conv_epilogue.hpp"
#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/init.hpp"
#include "progdiff/nn/layer.hpp"

namespace progdiff::nn {

namespace detail {
/// The back end's per-layer cache of weights in its kernels' form (B::ConvWeightCache, used by
/// B::conv2d_forward_cached) where it has one; an empty type otherwise.
template <class B>
struct ConvWeightCacheOf {
  struct type {};
};
template <class B>
requires requires { typename B::ConvWeightCache; }
struct ConvWeightCacheOf<B> {
  using type = typename B::ConvWeightCache;
};
}  // namespace detail

struct Conv2dConfig {
  std::int64_t in_channels = 1;
  std::int64_t out_channels = 1;
  std::int64_t kernel = 3;
  std::int64_t stride = 1;
  std::int64_t padding = 1;
  bool bias = true;
};

/// 2-D convolution, as torch.nn.Conv2d (square kernel, symmetric padding).
/// x: [N, C_in, H, W] -> y: [N, C_out, H', W']; weight: [C_out, C_in, k, k]; bias: [C_out].
/// backward returns dx and accumulates dweight and dbias.
template <class T, class B>
class Conv2d {
 public:
  using value_type = T;
  using backend_type = B;

  Conv2d() = default;
  explicit Conv2d(Conv2dConfig config) : config_(config) {
    require(config.in_channels > 0 && config.out_channels > 0 && config.kernel > 0 && config.stride > 0 &&
                config.padding >= 0,
            "Conv2d: channels, kernel and stride must be positive and padding non-negative");
    weight_ = Parameter<T, B>(Shape{config.out_channels, config.in_channels, config.kernel, config.kernel});
    if (config.bias) bias_ = Parameter<T, B>(Shape{config.out_channels});
  }

  /// PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
  void initialize(Generator& gen) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(config_.in_channels * config_.kernel * config_.kernel));
    init_uniform(weight_.value, bound, gen);
    if (config_.bias) init_uniform(bias_.value, bound, gen);
  }

  const Conv2dConfig& config() const { return config_; }
  Parameter<T, B>& weight() { return weight_; }
  Parameter<T, B>& bias() { return bias_; }

  ConvGeometry geometry(const Shape& in) const {
    expect_nchw(in, "Conv2d");
    if (in[1] != config_.in_channels)
      throw ShapeError("Conv2d: got input shape " + in.str() + ", expected [N, " + std::to_string(config_.in_channels) +
                       ", H, W]");
    ConvGeometry g{in[0],          in[1],          in[2],          in[3],          config_.out_channels,
                   config_.kernel, config_.kernel, config_.stride, config_.padding};
    require(g.sizes_positive(), "Conv2d: convolution sizes must be positive");
    require<ShapeError>(g.kernel_fits(), "Conv2d: kernel " + std::to_string(g.kh) + "x" + std::to_string(g.kw) +
                                             " larger than the padded input " + std::to_string(g.h + 2 * g.pad) + "x" +
                                             std::to_string(g.w + 2 * g.pad));
    return g;
  }

  Shape output_shape(const Shape& in) const {
    const ConvGeometry g = geometry(in);
    return Shape{g.n, g.c_out, g.out_h(), g.out_w()};
  }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    const ConvGeometry g = geometry(x.shape());
    Tensor<T, B> y(Shape{g.n, g.c_out, g.out_h(), g.out_w()});
    if (forward_cached(g, x.data(), ConvEpilogue<T>{config_.bias ? bias_.value.data() : nullptr}, y.data())) {
      keep_for_backward(input_, x);
      return y;
    }
    // A back end with a fused convolution + bias uses it; the others add the bias afterwards.
    if constexpr (requires(const T* p, T* q) { B::conv2d_forward_bias(g, p, p, p, q); }) {
      if (config_.bias) {
        B::conv2d_forward_bias(g, x.data(), weight_.value.data(), bias_.value.data(), y.data());
        keep_for_backward(input_, x);
        return y;
      }
    }
    B::conv2d_forward(g, x.data(), weight_.value.data(), y.data());
    if (config_.bias) B::add_channel_bias(g.n, g.c_out, g.out_hw(), bias_.value.data(), y.data());
    keep_for_backward(input_, x);
    return y;
  }

  /// forward(x) + a per-sample bias [N, C_out] + a residual [N, C_out, H', W'] (an empty tensor
  /// adds nothing), added as the output is stored where the back end can
  /// (B::conv2d_forward_epilogue), in further passes otherwise. backward is forward's: the
  /// added terms depend on neither x nor the parameters.
  Tensor<T, B> forward_adding(const Tensor<T, B>& x, const Tensor<T, B>& sample_bias, const Tensor<T, B>& residual) {
    const ConvGeometry g = geometry(x.shape());
    const Shape out{g.n, g.c_out, g.out_h(), g.out_w()};
    if (!sample_bias.empty()) expect_shape(sample_bias.shape(), Shape{g.n, g.c_out}, "Conv2d sample bias");
    if (!residual.empty()) expect_shape(residual.shape(), out, "Conv2d residual");
    if constexpr (requires(const T* p, T* q, const ConvEpilogue<T>& e) { B::conv2d_forward_epilogue(g, p, p, e, q); }) {
      Tensor<T, B> y(out);
      const ConvEpilogue<T> epilogue{config_.bias ? bias_.value.data() : nullptr,
                                     sample_bias.empty() ? nullptr : sample_bias.data(),
                                     residual.empty() ? nullptr : residual.data()};
      if (!forward_cached(g, x.data(), epilogue, y.data()))
        B::conv2d_forward_epilogue(g, x.data(), weight_.value.data(), epilogue, y.data());
      keep_for_backward(input_, x);
      return y;
    } else {
      Tensor<T, B> y = forward(x);
      if (!sample_bias.empty()) B::add_sample_channel(g.n, g.c_out, g.out_hw(), sample_bias.data(), y.data());
      if (!residual.empty()) B::add(y.size(), y.data(), residual.data(), y.data());
      return y;
    }
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(!input_.empty(), "Conv2d::backward called without a preceding forward outside inference mode");
    const ConvGeometry g = geometry(input_.shape());
    expect_shape(dy.shape(), Shape{g.n, g.c_out, g.out_h(), g.out_w()}, "Conv2d::backward dy");
    Tensor<T, B> dx(input_.shape());
    B::conv2d_backward_data(g, dy.data(), weight_.value.data(), dx.data());
    B::conv2d_backward_weight(g, input_.data(), dy.data(), weight_.grad.data());
    if (config_.bias) B::channel_bias_grad(g.n, g.c_out, g.out_hw(), dy.data(), bias_.grad.data());
    input_.reset();
    return dx;
  }

  std::int64_t flops(const Shape& in) const { return geometry(in).forward_flops(); }
  std::int64_t parameter_count() const { return weight_.numel() + (config_.bias ? bias_.numel() : 0); }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    f(scoped(prefix, "weight"), weight_);
    if (config_.bias) f(scoped(prefix, "bias"), bias_);
  }

  /// The back end's cache of the weights in its kernels' form (for tests and diagnostics).
  const typename detail::ConvWeightCacheOf<B>::type& weight_cache() const { return weight_cache_; }

 private:
  /// The forward through B::conv2d_forward_cached where the back end has it and this is an
  /// inference-mode forward; false where nothing ran. The cache checks the weights' bits on
  /// every call, so its reuse is safe whatever changed them; it is kept to inference mode
  /// because sampling and evaluation repeat the same weights, while a training forward follows
  /// an optimizer step: there it would only copy the weights and hold the memory, so training
  /// runs the kernels as before and frees the cache.
  bool forward_cached(const ConvGeometry& g, const T* x, const ConvEpilogue<T>& epilogue, T* y) {
    if constexpr (requires { B::conv2d_forward_cached(g, x, x, epilogue, y, weight_cache_); }) {
      if (inference_mode()) return B::conv2d_forward_cached(g, x, weight_.value.data(), epilogue, y, weight_cache_);
      weight_cache_.release();
    }
    return false;
  }

  Conv2dConfig config_;
  Parameter<T, B> weight_, bias_;
  Tensor<T, B> input_;
  [[no_unique_address]] typename detail::ConvWeightCacheOf<B>::type weight_cache_;
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class Conv2d<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

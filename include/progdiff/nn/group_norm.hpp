#pragma once
#include <string>

#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/layer.hpp"
#include "progdiff/nn/silu.hpp"

namespace progdiff::nn {

struct GroupNormConfig {
  std::int64_t groups = 32;
  std::int64_t channels = 32;
  double eps = 1e-5;
};

/// Group normalization (Wu & He 2018), as torch.nn.GroupNorm with affine parameters.
/// x, y: [N, C, H, W] (or [N, C]); gamma, beta: [C]. backward returns dx and accumulates
/// dgamma and dbeta.
template <class T, class B>
class GroupNorm {
 public:
  using value_type = T;
  using backend_type = B;

  GroupNorm() = default;
  explicit GroupNorm(GroupNormConfig config) : config_(config) {
    require(config.groups > 0 && config.channels > 0 && config.channels % config.groups == 0,
            "GroupNorm: the group count " + std::to_string(config.groups) + " must divide the channel count " +
                std::to_string(config.channels));
    gamma_ = Parameter<T, B>(Shape{config.channels});
    beta_ = Parameter<T, B>(Shape{config.channels});
    gamma_.value.fill(T(1));
  }

  /// PyTorch's default: gamma = 1, beta = 0 (nothing is drawn from `gen`).
  void initialize(Generator&) {
    gamma_.value.fill(T(1));
    beta_.value.fill(T(0));
  }

  const GroupNormConfig& config() const { return config_; }
  Parameter<T, B>& gamma() { return gamma_; }
  Parameter<T, B>& beta() { return beta_; }

  Shape output_shape(const Shape& in) const {
    if (in.rank() < 2 || in[1] != config_.channels)
      throw ShapeError("GroupNorm: got input shape " + in.str() + ", expected [N, " + std::to_string(config_.channels) +
                       ", ...]");
    return in;
  }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    output_shape(x.shape());
    const std::int64_t n = x.dim(0), c = config_.channels, hw = spatial_size(x.shape());
    Tensor<T, B> y(x.shape());
    Tensor<T, B> mean(Shape{n, config_.groups}), rstd(Shape{n, config_.groups});
    B::group_norm_forward(n, c, hw, config_.groups, config_.eps, x.data(), gamma_.value.data(), beta_.value.data(),
                          y.data(), mean.data(), rstd.data());
    keep_for_backward(input_, x);
    keep_for_backward(mean_, mean);
    keep_for_backward(rstd_, rstd);
    return y;
  }

  /// silu.forward(forward(x)) in one pass over each group where the back end has the fused
  /// kernels (B::group_norm_silu_forward and _backward), the two layers in turn otherwise.
  /// Either way backward_silu(dy, silu) is its backward; the fused path keeps no normalized
  /// values (the backward recomputes them).
  Tensor<T, B> forward_silu(const Tensor<T, B>& x, [[maybe_unused]] SiLU<T, B>& silu) {
    if constexpr (kFusedSilu) {
      output_shape(x.shape());
      const std::int64_t n = x.dim(0), c = config_.channels, hw = spatial_size(x.shape());
      Tensor<T, B> y(x.shape());
      Tensor<T, B> mean(Shape{n, config_.groups}), rstd(Shape{n, config_.groups});
      B::group_norm_silu_forward(n, c, hw, config_.groups, config_.eps, x.data(), gamma_.value.data(),
                                 beta_.value.data(), y.data(), mean.data(), rstd.data());
      keep_for_backward(input_, x);
      keep_for_backward(mean_, mean);
      keep_for_backward(rstd_, rstd);
      return y;
    } else {
      return silu.forward(forward(x));
    }
  }

  /// The backward of forward_silu: dy = dL/d SiLU output, returns dx and accumulates dgamma and dbeta.
  Tensor<T, B> backward_silu(const Tensor<T, B>& dy, [[maybe_unused]] SiLU<T, B>& silu) {
    if constexpr (kFusedSilu) {
      require(!input_.empty(), "GroupNorm::backward_silu called without a preceding forward outside inference mode");
      expect_shape(dy.shape(), input_.shape(), "GroupNorm::backward_silu dy");
      const std::int64_t n = dy.dim(0), c = config_.channels, hw = spatial_size(dy.shape());
      Tensor<T, B> dx(dy.shape());
      B::group_norm_silu_backward(n, c, hw, config_.groups, input_.data(), dy.data(), mean_.data(), rstd_.data(),
                                  gamma_.value.data(), beta_.value.data(), dx.data(), gamma_.grad.data(),
                                  beta_.grad.data());
      input_.reset();
      mean_.reset();
      rstd_.reset();
      return dx;
    } else {
      return backward(silu.backward(dy));
    }
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(!input_.empty(), "GroupNorm::backward called without a preceding forward outside inference mode");
    expect_shape(dy.shape(), input_.shape(), "GroupNorm::backward dy");
    const std::int64_t n = dy.dim(0), c = config_.channels, hw = spatial_size(dy.shape());
    Tensor<T, B> dx(dy.shape());
    B::group_norm_backward(n, c, hw, config_.groups, input_.data(), dy.data(), mean_.data(), rstd_.data(),
                           gamma_.value.data(), dx.data(), gamma_.grad.data(), beta_.grad.data());
    input_.reset();
    mean_.reset();
    rstd_.reset();
    return dx;
  }

  /// Normalization and the affine map are not multiply-adds of a GEMM: counted as zero,
  /// as the papers' FLOPs counts (conv and linear layers only) do.
  std::int64_t flops(const Shape&) const { return 0; }
  std::int64_t parameter_count() const { return 2 * config_.channels; }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    f(scoped(prefix, "gamma"), gamma_);
    f(scoped(prefix, "beta"), beta_);
  }

 private:
  // Elements per channel (product of the axes after C); an empty batch must not divide by zero.
  static std::int64_t spatial_size(const Shape& s) {
    std::int64_t hw = 1;
    for (int i = 2; i < s.rank(); ++i) hw *= s[i];
    return hw;
  }

  // Whether the back end runs GroupNorm + SiLU fused, forward and backward.
  static constexpr bool kFusedSilu = requires(const T* p, T* q) {
    B::group_norm_silu_forward(1, 1, 1, 1, 1.0, p, p, p, q, q, q);
    B::group_norm_silu_backward(1, 1, 1, 1, p, p, p, p, p, p, q, q, q);
  };

  GroupNormConfig config_;
  Parameter<T, B> gamma_, beta_;
  Tensor<T, B> input_, mean_, rstd_;
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class GroupNorm<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

#pragma once
#include <algorithm>
#include <cmath>
#include <string>

#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/layer.hpp"

namespace progdiff::nn {

struct AttentionBlockConfig {
  std::int64_t channels = 64;
  std::int64_t heads = 1;
  std::int64_t groups = 32;
  double eps = 1e-6;          // DDPM's GroupNorm epsilon
  bool skip_rescale = false;  // DDPM++ (AttnBlockpp): y = (x + proj(o)) / sqrt(2)
};

/// Spatial multi-head self-attention with a residual connection, the AttnBlock of DDPM
/// (Ho et al. 2020) and DDPM++ (Song et al. 2021), with multi-head attention as in
/// Vaswani et al. (2017) eq. 1: softmax(Q K^T / sqrt(d)) V.
///
///   x [N, C, H, W] -> norm (GroupNorm, gamma/beta [C]) -> h [N, C, H, W]
///   -> qkv (1x1 Conv2d C -> 3C, weight [3C, C, 1, 1], bias [3C]) -> [N, 3C, HW]:
///      channels [0, C) are q, [C, 2C) k, [2C, 3C) v; head h owns channels h*d .. (h+1)*d - 1
///      of each, d = C / heads, so q_h, k_h, v_h are [d, HW] matrices;
///   -> per sample and head: A = softmax_rows(q_h^T k_h / sqrt(d)) [HW, HW] (rows: queries),
///      o_h = v_h A^T [d, HW], written to channels h*d .. of o [N, C, HW];
///   -> proj (1x1 Conv2d C -> C, weight [C, C, 1, 1], bias [C]) -> + x -> y [N, C, H, W]
///      (divided by sqrt(2) with skip_rescale, as DDPM++).
/// backward returns dx and accumulates every parameter gradient.
template <class T, class B>
class AttentionBlock {
 public:
  using value_type = T;
  using backend_type = B;

  AttentionBlock() = default;
  explicit AttentionBlock(AttentionBlockConfig config) : config_(config) {
    require(config.channels > 0 && config.heads > 0 && config.channels % config.heads == 0,
            "AttentionBlock: the head count " + std::to_string(config.heads) + " must divide the channel count " +
                std::to_string(config.channels));
    norm_ = GroupNorm<T, B>(GroupNormConfig{config.groups, config.channels, config.eps});
    qkv_ = Conv2d<T, B>(Conv2dConfig{config.channels, 3 * config.channels, 1, 1, 0, true});
    proj_ = Conv2d<T, B>(Conv2dConfig{config.channels, config.channels, 1, 1, 0, true});
  }

  /// PyTorch's defaults: GroupNorm gamma = 1, beta = 0; both convolutions U(+-1/sqrt(C)).
  /// (DDPM's original zero-initializes proj so the block starts as the identity; a model that
  /// wants that fills proj().weight() and proj().bias() with zeros after this.)
  void initialize(Generator& gen) {
    norm_.initialize(gen);
    qkv_.initialize(gen);
    proj_.initialize(gen);
  }

  const AttentionBlockConfig& config() const { return config_; }
  GroupNorm<T, B>& norm() { return norm_; }
  Conv2d<T, B>& qkv() { return qkv_; }
  Conv2d<T, B>& proj() { return proj_; }

  Shape output_shape(const Shape& in) const {
    if (in.rank() != 4 || in[1] != config_.channels)
      throw ShapeError("AttentionBlock: got input shape " + in.str() + ", expected [N, " +
                       std::to_string(config_.channels) + ", H, W]");
    return in;
  }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    output_shape(x.shape());
    const std::int64_t n = x.dim(0), c = config_.channels, hw = x.dim(2) * x.dim(3);
    const std::int64_t heads = config_.heads, d = c / heads;
    const Tensor<T, B> qkv_out = qkv_.forward(norm_.forward(x));
    Tensor<T, B> probs(Shape{n, heads, hw, hw});
    Tensor<T, B> o(x.shape());
    // One batched GEMM per head over all samples (the back end runs the samples in parallel);
    // sample i of head h: q at qkv[i, h*d], scores at probs[i, h].
    const std::int64_t qkv_stride = 3 * c * hw, probs_stride = heads * hw * hw;
    for (std::int64_t h = 0; h < heads; ++h) {
      const T* q = qkv_out.data() + h * d * hw;
      const T* k = q + c * hw;
      T* a = probs.data() + h * hw * hw;
      // scores = q_h^T k_h: [HW, HW]
      B::template gemm_strided_batched<T>(Trans::Yes, Trans::No, hw, hw, d, T(1), q, hw, qkv_stride, k, hw, qkv_stride,
                                          T(0), a, hw, probs_stride, n);
    }
    B::softmax_rows(n * heads * hw, hw, T(1) / std::sqrt(static_cast<T>(d)), probs.data(), probs.data());
    for (std::int64_t h = 0; h < heads; ++h) {
      const T* v = qkv_out.data() + 2 * c * hw + h * d * hw;
      // o_h = v_h A_h^T: [d, HW]
      B::template gemm_strided_batched<T>(Trans::No, Trans::Yes, d, hw, hw, T(1), v, hw, qkv_stride,
                                          probs.data() + h * hw * hw, hw, probs_stride, T(0), o.data() + h * d * hw, hw,
                                          c * hw, n);
    }
    Tensor<T, B> y = proj_.forward(o);
    B::add(y.size(), y.data(), x.data(), y.data());
    if (config_.skip_rescale) B::scale(y.size(), static_cast<T>(1 / std::sqrt(2.0)), y.data());
    keep_for_backward(qkv_out_, qkv_out);
    keep_for_backward(probs_, probs);
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy_in) {
    Tensor<T, B> dy = dy_in;
    if (config_.skip_rescale) {
      dy = dy_in.clone();
      B::scale(dy.size(), static_cast<T>(1 / std::sqrt(2.0)), dy.data());
    }
    require(!probs_.empty(), "AttentionBlock::backward called without a preceding forward outside inference mode");
    const Shape in{qkv_out_.dim(0), config_.channels, qkv_out_.dim(2), qkv_out_.dim(3)};
    expect_shape(dy.shape(), in, "AttentionBlock::backward dy");
    const std::int64_t n = in[0], c = config_.channels, hw = in[2] * in[3];
    const std::int64_t heads = config_.heads, d = c / heads;
    const Tensor<T, B> d_o = proj_.backward(dy);
    Tensor<T, B> d_qkv(qkv_out_.shape());
    // Samples go in chunks so the score-gradient scratch stays near 8 MiB (at least two
    // samples, one per thread); within a chunk every GEMM is batched over its samples.
    const std::int64_t per_sample = heads * hw * hw;
    const std::int64_t chunk = std::min(n, std::max<std::int64_t>(2, (std::int64_t(1) << 21) / per_sample));
    Tensor<T, B> d_a(Shape{chunk, heads, hw, hw});
    const T scale = T(1) / std::sqrt(static_cast<T>(d));
    const std::int64_t qkv_stride = 3 * c * hw;
    for (std::int64_t i0 = 0; i0 < n; i0 += chunk) {
      const std::int64_t count = std::min(chunk, n - i0);
      const T* q0 = qkv_out_.data() + i0 * qkv_stride;
      T* dq0 = d_qkv.data() + i0 * qkv_stride;
      const T* a0 = probs_.data() + i0 * per_sample;
      const T* do0 = d_o.data() + i0 * c * hw;
      for (std::int64_t h = 0; h < heads; ++h) {
        const T* v = q0 + 2 * c * hw + h * d * hw;
        const T* doh = do0 + h * d * hw;
        // dv_h = do_h A_h; dA_h = do_h^T v_h
        B::template gemm_strided_batched<T>(Trans::No, Trans::No, d, hw, hw, T(1), doh, hw, c * hw, a0 + h * hw * hw,
                                            hw, per_sample, T(0), dq0 + 2 * c * hw + h * d * hw, hw, qkv_stride, count);
        B::template gemm_strided_batched<T>(Trans::Yes, Trans::No, hw, hw, d, T(1), doh, hw, c * hw, v, hw, qkv_stride,
                                            T(0), d_a.data() + h * hw * hw, hw, per_sample, count);
      }
      // dS = softmax' (includes the 1/sqrt(d) scale), in place
      B::softmax_rows_backward(count * heads * hw, hw, scale, a0, d_a.data(), d_a.data());
      for (std::int64_t h = 0; h < heads; ++h) {
        const T* q = q0 + h * d * hw;
        const T* k = q + c * hw;
        const T* ds = d_a.data() + h * hw * hw;
        // dq_h = k_h dS_h^T; dk_h = q_h dS_h
        B::template gemm_strided_batched<T>(Trans::No, Trans::Yes, d, hw, hw, T(1), k, hw, qkv_stride, ds, hw,
                                            per_sample, T(0), dq0 + h * d * hw, hw, qkv_stride, count);
        B::template gemm_strided_batched<T>(Trans::No, Trans::No, d, hw, hw, T(1), q, hw, qkv_stride, ds, hw,
                                            per_sample, T(0), dq0 + c * hw + h * d * hw, hw, qkv_stride, count);
      }
    }
    probs_.reset();
    qkv_out_.reset();
    Tensor<T, B> dx = norm_.backward(qkv_.backward(d_qkv));
    B::add(dx.size(), dx.data(), dy.data(), dx.data());
    return dx;
  }

  /// Both convolutions plus the two attention GEMMs (q^T k and v A^T), 2 * N * HW * HW * C each.
  std::int64_t flops(const Shape& in) const {
    output_shape(in);
    const std::int64_t hw = in[2] * in[3];
    return qkv_.flops(in) + proj_.flops(in) + 2 * 2 * in[0] * hw * hw * config_.channels;
  }
  std::int64_t parameter_count() const {
    return 2 * config_.channels + qkv_.parameter_count() + proj_.parameter_count();
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    norm_.visit_parameters(f, scoped(prefix, "norm"));
    qkv_.visit_parameters(f, scoped(prefix, "qkv"));
    proj_.visit_parameters(f, scoped(prefix, "proj"));
  }

 private:
  AttentionBlockConfig config_;
  GroupNorm<T, B> norm_;
  Conv2d<T, B> qkv_, proj_;
  Tensor<T, B> qkv_out_, probs_;  // [N, 3C, H, W] and [N, heads, HW, HW], kept for backward
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class AttentionBlock<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

#pragma once
// The Backend concept: where tensors live and how their kernels run. Layer code calls only
// these static functions, so a layer written once runs on every back end (CPU, CUDA, or a
// user's own type that satisfies the concept).
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/math/adam.hpp"

namespace progdiff {

/// Row-major GEMM operand transposition.
enum class Trans : bool { No = false, Yes = true };

// clang-format off
/// Memory: allocate, release, copy between host and back end, fill, 2-D (channel-slice) copies.
template <class B>
concept BackendMemory = requires(float* p, const float* cp, std::size_t n, std::int64_t i, float s) {
  { B::name() } -> std::convertible_to<const char*>;
  { B::host_accessible } -> std::convertible_to<bool>;
  { B::template allocate<float>(n) } -> std::same_as<float*>;
  B::template deallocate<float>(p, n);
  B::template copy_from_host<float>(p, cp, n);
  B::template copy_to_host<float>(p, cp, n);
  B::template copy<float>(p, cp, n);
  B::template fill<float>(p, n, s);
  B::template copy_2d<float>(i, i, cp, i, p, i);
  B::template add_2d<float>(i, i, cp, i, p, i);
  B::synchronize();
};

/// C = alpha op(A) op(B) + beta C, row-major, optionally batched with strides.
template <class B>
concept BackendGemm = requires(float* p, const float* cp, std::int64_t i, float s) {
  B::template gemm<float>(Trans::No, Trans::No, i, i, i, s, cp, i, cp, i, s, p, i);
  B::template gemm_strided_batched<float>(Trans::No, Trans::No, i, i, i, s, cp, i, i, cp, i, i, s, p, i, i, i);
};

/// Element-wise kernels, reductions and Philox noise.
template <class B>
concept BackendElementwise = requires(float* p, const float* cp, std::size_t n, std::int64_t i, float s,
                                      std::uint64_t u, double d) {
  B::template axpy<float>(n, s, cp, p);
  B::template add<float>(n, cp, cp, p);
  B::template mul<float>(n, cp, cp, p);
  B::template scale<float>(n, s, p);
  { B::template sum<float>(n, cp) } -> std::convertible_to<double>;
  { B::template dot<float>(n, cp, cp) } -> std::convertible_to<double>;
  { B::template all_finite<float>(n, cp) } -> std::convertible_to<bool>;
  B::template silu_forward<float>(n, cp, p);
  B::template silu_backward<float>(n, cp, cp, p);
  B::template dropout<float>(n, d, u, u, u, cp, p);
  B::template normal<float>(n, u, u, u, p);
};

/// The kernels of the U-Net layers: normalization, softmax, convolution, channel broadcasts,
/// upsampling and the timestep embedding.
template <class B>
concept BackendLayerKernels = requires(float* p, const float* cp, std::int64_t i, float s, double d,
                                       const ConvGeometry& g) {
  B::template group_norm_forward<float>(i, i, i, i, d, cp, cp, cp, p, p, p);
  B::template group_norm_backward<float>(i, i, i, i, cp, cp, cp, cp, cp, p, p, p);
  B::template softmax_rows<float>(i, i, s, cp, p);
  B::template softmax_rows_backward<float>(i, i, s, cp, cp, p);
  B::template conv2d_forward<float>(g, cp, cp, p);
  B::template conv2d_backward_data<float>(g, cp, cp, p);
  B::template conv2d_backward_weight<float>(g, cp, cp, p);
  B::template add_channel_bias<float>(i, i, i, cp, p);
  B::template channel_bias_grad<float>(i, i, i, cp, p);
  B::template add_sample_channel<float>(i, i, i, cp, p);
  B::template sample_channel_sum<float>(i, i, i, cp, p);
  B::template upsample_nearest2x_forward<float>(i, i, i, cp, p);
  B::template upsample_nearest2x_backward<float>(i, i, i, cp, p);
  B::template timestep_embedding<float>(i, i, cp, p, d, d);
};

/// The update kernels of training and sampling: every sampler step and the loss's noisy
/// input are out[i, :] = sum_k w[i, k] * terms[k][i, :] over `sampler_terms` operands (a null
/// operand counts as zero; weights in double, one row per sample); AdamW updates a parameter
/// tensor in place with the step's hyper-parameters (math/adam.hpp).
template <class B>
concept BackendUpdates = requires(float* p, const float* cp, const double* cw, std::size_t n, std::int64_t i,
                                  const math::AdamHyper& hyper, long long step) {
  { B::sampler_terms } -> std::convertible_to<int>;
  requires B::sampler_terms == 6;  // sample, model output, noise and three history buffers
  B::template weighted_sum<float>(i, i, cw, std::array<const float*, B::sampler_terms>{}, p);
  B::template adamw<float>(n, p, cp, p, p, hyper, step);
};

/// Where tensors live and how every kernel the library calls runs. Beyond these, a back end
/// may offer faster paths the library detects and uses when present, with a portable
/// fallback otherwise: normal_rows (a batch's per-sample noise in one call,
/// sample::RowNoiseBackend), row_sq_norms and gaussian_softmax_rows (the optimal denoiser on a
/// device, group::DeviceOptimalDenoiser), conv2d_forward_bias (convolution and bias fused,
/// nn::Conv2d), conv2d_forward_epilogue (a per-sample bias and a residual added too,
/// nn::Conv2d::forward_adding), ConvWeightCache with conv2d_forward_cached (weights kept in a
/// kernel's transformed form across inference-mode forwards, one cache per nn::Conv2d),
/// group_norm_silu_forward and group_norm_silu_backward (GroupNorm and SiLU fused,
/// nn::GroupNorm::forward_silu) and device_count (a device check).
template <class B>
concept Backend =
    BackendMemory<B> && BackendGemm<B> && BackendElementwise<B> && BackendLayerKernels<B> && BackendUpdates<B>;
// clang-format on

/// Readable failure at every composition point that takes a back end.
template <class B>
constexpr bool check_backend() {
  static_assert(BackendMemory<B>,
                "progdiff: the back-end type lacks the memory functions of progdiff::Backend (name, "
                "host_accessible, allocate, deallocate, copy_from_host, copy_to_host, copy, fill, copy_2d, "
                "add_2d, synchronize); see progdiff/backend/backend.hpp");
  static_assert(BackendGemm<B>, "progdiff: the back-end type lacks gemm or gemm_strided_batched");
  static_assert(BackendElementwise<B>,
                "progdiff: the back-end type lacks element-wise kernels of progdiff::Backend (axpy, add, mul, "
                "scale, sum, dot, all_finite, silu_forward/backward, dropout, normal)");
  static_assert(BackendLayerKernels<B>,
                "progdiff: the back-end type lacks layer kernels of progdiff::Backend (group_norm, softmax_rows, "
                "conv2d, channel bias, sample channel, upsample, timestep_embedding)");
  static_assert(BackendUpdates<B>,
                "progdiff: the back-end type lacks the update kernels of progdiff::Backend (sampler_terms == 6, "
                "weighted_sum, adamw) that every sampler, loss and optimizer step calls");
  return true;
}

}  // namespace progdiff

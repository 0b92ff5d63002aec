#pragma once
// 2-D convolution on the CPU. Single precision on an AVX-512 target runs Winograd F(2x2, 3x3)
// (detail/winograd_avx512.hpp) for 3x3 "same" convolutions of 16 or more channels where it is the
// faster one (the forward's and the weight gradient's crossovers in kernel_choices.hpp), the implicit-GEMM kernels of
// detail/conv_avx512.hpp otherwise. Float on an AVX2 target without AVX-512 runs 3x3 "same" forwards with rows of 16 or
// more pixels (or of 7 or 8) and channels from the machine's crossover up (kernel_choices.hpp; 16 built in) as Winograd
// F(4x4, 3x3) where rows hold 4 or at least 8 tiles of 4 pixels (detail/winograd4_avx2.hpp) and
// F(2x2, 3x3) elsewhere (detail/winograd_avx2.hpp), the weight gradient of 3x3 "same"
// convolutions from the weight gradient's crossover up (16 built in) as Winograd F(2x2, 3x3)
// (detail/winograd_backward_weight_avx2.hpp), the other forwards and weight gradients as the
// implicit GEMMs of detail/conv_avx2.hpp, and the backward data of a stride-1 convolution as the
// forward of dy with the flipped kernels (by either kernel); both forwards add the epilogue's
// terms as they store y. The portable path (double, 1x1 kernels, no AVX2) does im2col per
// sample, then one GEMM per sample with the weight matrix [c_out, c_in*kh*kw] (a 1x1 stride-1
// convolution skips im2col). The plain-loop reference is conv_reference.hpp.
// conv2d_forward_epilogue adds a bias, a per-sample bias and a residual as it stores the output
// (conv_epilogue.hpp). Under bf16 mixed precision (matmul_precision.hpp) the convolutions the
// direct kernels cover run detail/conv_bf16_avx512.hpp instead.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "progdiff/backend/conv_epilogue.hpp"
#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/conv_avx2.hpp"
#include "progdiff/backend/cpu/detail/conv_avx512.hpp"
#include "progdiff/backend/cpu/detail/conv_bf16_avx512.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/winograd4_avx2.hpp"
#include "progdiff/backend/cpu/detail/winograd_avx2.hpp"
#include "progdiff/backend/cpu/detail/winograd_avx512.hpp"
#include "progdiff/backend/cpu/detail/winograd_backward_weight_avx2.hpp"
#include "progdiff/backend/cpu/elementwise.hpp"
#include "progdiff/backend/cpu/gemm.hpp"
#include "progdiff/backend/cpu/kernel_choices.hpp"
#include "progdiff/backend/cpu/matmul_precision.hpp"
#include "progdiff/backend/cpu/winograd_weight_cache.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

struct Conv {
  /// Per-thread scratch that only grows: the im2col buffer is reused across calls.
  template <class T>
  static T* scratch(std::size_t n) {
    thread_local std::vector<T> buffer;
    if (buffer.size() < n) buffer.resize(n);
    return buffer.data();
  }

  /// tap(o, i, ki, kj) of row-major weights [c_out, c_in, 3, 3], for the Winograd path.
  static auto forward_taps(const ConvGeometry& g, const float* weight) {
    return [weight, c_in = g.c_in](std::int64_t o, std::int64_t i, int ki, int kj) {
      return weight[(o * c_in + i) * 9 + ki * 3 + kj];
    };
  }

  /// Whether this call runs in bf16 (set_matmul_precision; the setting can only be bf16 where
  /// the bf16 kernels are compiled).
  static bool bf16_products() { return matmul_precision() == MatmulPrecision::bf16; }

  static bool is_pointwise(const ConvGeometry& g) { return g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0; }

  // x: [c_in, h, w] -> col: [c_in*kh*kw, out_h*out_w]
  template <class T>
  static void im2col(const ConvGeometry& g, const T* x, T* col) {
    const std::int64_t oh = g.out_h(), ow = g.out_w();
    for (std::int64_t c = 0; c < g.c_in; ++c)
      for (std::int64_t ki = 0; ki < g.kh; ++ki)
        for (std::int64_t kj = 0; kj < g.kw; ++kj) {
          T* row = col + ((c * g.kh + ki) * g.kw + kj) * oh * ow;
          for (std::int64_t i = 0; i < oh; ++i) {
            const std::int64_t yi = i * g.stride - g.pad + ki;
            T* out = row + i * ow;
            if (yi < 0 || yi >= g.h) {
              std::memset(out, 0, static_cast<std::size_t>(ow) * sizeof(T));
              continue;
            }
            const T* in = x + (c * g.h + yi) * g.w;
            if (g.stride == 1) {
              // Columns j read in[j - pad + kj]: zeros where that falls outside the row, one
              // copy of the span inside it.
              const std::int64_t shift = kj - g.pad;
              const std::int64_t lo = std::clamp<std::int64_t>(-shift, 0, ow);
              const std::int64_t hi = std::clamp<std::int64_t>(g.w - shift, lo, ow);
              std::fill(out, out + lo, T(0));
              std::copy(in + lo + shift, in + hi + shift, out + lo);
              std::fill(out + hi, out + ow, T(0));
              continue;
            }
            for (std::int64_t j = 0; j < ow; ++j) {
              const std::int64_t xj = j * g.stride - g.pad + kj;
              out[j] = (xj >= 0 && xj < g.w) ? in[xj] : T(0);
            }
          }
        }
  }

  // col: [c_in*kh*kw, out_h*out_w] -> dx: [c_in, h, w] (accumulates)
  template <class T>
  static void col2im_add(const ConvGeometry& g, const T* col, T* dx) {
    const std::int64_t oh = g.out_h(), ow = g.out_w();
    for (std::int64_t c = 0; c < g.c_in; ++c)
      for (std::int64_t ki = 0; ki < g.kh; ++ki)
        for (std::int64_t kj = 0; kj < g.kw; ++kj) {
          const T* row = col + ((c * g.kh + ki) * g.kw + kj) * oh * ow;
          for (std::int64_t i = 0; i < oh; ++i) {
            const std::int64_t yi = i * g.stride - g.pad + ki;
            if (yi < 0 || yi >= g.h) continue;
            T* out = dx + (c * g.h + yi) * g.w;
            const T* in = row + i * ow;
            if (g.stride == 1) {  // the span of columns whose input column lies inside the row
              const std::int64_t shift = kj - g.pad;
              const std::int64_t lo = std::clamp<std::int64_t>(-shift, 0, ow);
              const std::int64_t hi = std::clamp<std::int64_t>(g.w - shift, lo, ow);
              for (std::int64_t j = lo; j < hi; ++j) out[j + shift] += in[j];
              continue;
            }
            for (std::int64_t j = 0; j < ow; ++j) {
              const std::int64_t xj = j * g.stride - g.pad + kj;
              if (xj >= 0 && xj < g.w) out[xj] += in[j];
            }
          }
        }
  }

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
  /// Whether the AVX2 forward of g runs Winograd: its kernel takes g, and g has channels from the
  /// machine's crossover up.
  static bool avx2_winograd_runs(const ConvGeometry& g) {
    return avx2::winograd_takes(g, kernel_choices().winograd_min_channels_for(g.out_hw()),
                                kernel_choices().winograd_tile);
  }

  /// The output tile side of the AVX2 Winograd forward of g: F(4x4, 3x3) where it takes g and the
  /// machine's choices allow it, else F(2x2, 3x3).
  static std::int64_t avx2_winograd_tile(const ConvGeometry& g) {
    return avx2::winograd_tile(g, kernel_choices().winograd_tile);
  }

  /// y = conv(x, weight) + the epilogue's terms by the AVX2 kernels, Winograd where the machine's
  /// crossover says it pays; not for 1x1 kernels (one plain GEMM each).
  static void avx2_forward(const ConvGeometry& g, const float* x, const float* weight,
                           const ConvEpilogue<float>& epilogue, float* y) {
    if (avx2_winograd_runs(g)) return avx2::conv2d_winograd_forward(g, avx2_winograd_tile(g), x, weight, y, epilogue);
    avx2::conv2d_forward_implicit(g, x, weight, y, epilogue);
  }
#endif

  /// y = conv(x, weight) (assigns; bias is added separately by the layer).
  template <class T>
  static void conv2d_forward(const ConvGeometry& g, const T* x, const T* weight, T* y) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
      if (bf16_products() && avx512::direct_applies(g))
        return avx512::bf16::conv2d_forward_direct(g, x, weight, nullptr, y);
#endif
      if (avx512::winograd_forward_pays(g)) return avx512::conv2d_winograd(g, x, forward_taps(g, weight), nullptr, y);
      return avx512::conv2d_forward_rowmajor(g, x, weight, y);
    }
#endif
    im2col_forward<T>(g, x, weight, y);
  }

  /// y = conv(x, weight) + bias[c_out] per channel (assigns): the AVX-512 and AVX2 kernels add
  /// the bias as they compute or store y, the portable path in a second pass. The Conv2d layer uses it
  /// where a back end has it (an optional member of the Backend interface).
  template <class T>
  static void conv2d_forward_bias(const ConvGeometry& g, const T* x, const T* weight, const T* bias, T* y) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
      if (bf16_products() && avx512::direct_applies(g))
        return avx512::bf16::conv2d_forward_direct(g, x, weight, bias, y);
#endif
      if (avx512::winograd_forward_pays(g)) return avx512::conv2d_winograd(g, x, forward_taps(g, weight), bias, y);
      if (avx512::direct_applies(g)) return avx512::conv2d_forward_direct(g, x, weight, bias, y);
    }
#elif defined(__AVX2__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>)
      if (!is_pointwise(g)) return avx2_forward(g, x, weight, ConvEpilogue<float>{bias, nullptr, nullptr}, y);
#endif
    conv2d_forward<T>(g, x, weight, y);
    Elementwise::add_channel_bias<T>(g.n, g.c_out, g.out_hw(), bias, y);
  }

  /// y = conv(x, weight) + the epilogue's bias, per-sample bias and residual (assigns): the
  /// direct and Winograd kernels of AVX-512 and AVX2 add them as they store y, the other paths
  /// (1x1 kernels on AVX2, bf16 products, the portable path) in further passes. The layers use it where a back end has
  /// it (an optional member of the Backend interface).
  template <class T>
  static void conv2d_forward_epilogue(const ConvGeometry& g, const T* x, const T* weight,
                                      const ConvEpilogue<T>& epilogue, T* y) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      if (!bf16_products()) {
        if (avx512::winograd_forward_pays(g))
          return avx512::conv2d_winograd(g, x, forward_taps(g, weight), epilogue, y);
        if (avx512::direct_applies(g)) return avx512::conv2d_forward_direct(g, x, weight, epilogue, y);
      }
    }
#elif defined(__AVX2__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>)
      if (!is_pointwise(g)) return avx2_forward(g, x, weight, epilogue, y);
#endif
    if (epilogue.bias)
      conv2d_forward_bias<T>(g, x, weight, epilogue.bias, y);
    else
      conv2d_forward<T>(g, x, weight, y);
    if (epilogue.sample_bias) Elementwise::add_sample_channel<T>(g.n, g.c_out, g.out_hw(), epilogue.sample_bias, y);
    if (epilogue.residual) {
      const auto size = static_cast<std::size_t>(g.n * g.c_out * g.out_hw());
      Elementwise::add<T>(size, y, epilogue.residual, y);
    }
  }

  /// The per-layer cache of conv2d_forward_cached (an optional member of the Backend interface:
  /// nn::Conv2d keeps one where a back end names this type).
  using ConvWeightCache = WinogradWeightCache;

  /// Where this call would run the Winograd forward, runs it with the transformed weights of
  /// `cache`, transforming them only where they are not those of exactly these weights
  /// (winograd_weight_cache.hpp), and returns true: the output is bit for bit that of
  /// conv2d_forward, conv2d_forward_bias or conv2d_forward_epilogue with the same terms.
  /// Returns false having done nothing where another kernel would run (then the caller calls
  /// one of those). Under bf16 products it declines too: there the Winograd forward runs only
  /// where the bf16 kernels do not apply and without the fused epilogue.
  template <class T>
  static bool conv2d_forward_cached(const ConvGeometry& g, const T* x, const T* weight, const ConvEpilogue<T>& epilogue,
                                    T* y, ConvWeightCache& cache) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      if (bf16_products() || !avx512::winograd_forward_pays(g)) return false;
      ConvWeightCache::Lease lease = cache.lease(g, weight, avx512::winograd::transformed_weights_floats(g));
      if (!lease) {
        avx512::conv2d_winograd(g, x, forward_taps(g, weight), epilogue, y);
        return true;
      }
      avx512::conv2d_winograd(g, x, forward_taps(g, lease.weights()), epilogue, y, 0,
                              avx512::winograd::TransformedWeights{lease.transformed(), lease.current()});
      if (!lease.current()) lease.commit();
      return true;
    }
#elif defined(__AVX2__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>) {
      if (!avx2_winograd_runs(g)) return false;
      const std::int64_t tile = avx2_winograd_tile(g);
      const auto floats = static_cast<std::size_t>(avx2::winograd_weights_floats(g, tile));
      ConvWeightCache::Lease lease = cache.lease(g, weight, floats);
      if (!lease) {
        avx2::conv2d_winograd_forward(g, tile, x, weight, y, epilogue);
        return true;
      }
      if (!lease.current()) {
        avx2::transform_winograd_weights(g, tile, lease.weights(), lease.transformed());
        lease.commit();
      }
      avx2::conv2d_winograd_forward_transformed(g, tile, x, lease.transformed(), y, epilogue);
      return true;
    }
#endif
    (void)g, (void)x, (void)weight, (void)epilogue, (void)y, (void)cache;
    return false;
  }

  /// dx = conv_transpose(dy, weight) (assigns).
  template <class T>
  static void conv2d_backward_data(const ConvGeometry& g, const T* dy, const T* weight, T* dx) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
      if (bf16_products() && avx512::bf16::backward_data_applies(g))
        return avx512::bf16::conv2d_backward_data(g, dy, weight, dx);
#endif
      if (avx512::winograd_forward_pays(g)) {
        // The gradient of a 3x3 "same" convolution is one too, of dy with the flipped kernels
        // and the channel roles swapped.
        const ConvGeometry t = g.backward_data_as_forward();
        const auto flipped = [weight, c_in = g.c_in](std::int64_t o, std::int64_t i, int ki, int kj) {
          return weight[(i * c_in + o) * 9 + (2 - ki) * 3 + (2 - kj)];
        };
        return avx512::conv2d_winograd(t, dy, flipped, nullptr, dx);
      }
      if (avx512::backward_data_as_forward(g)) return avx512::conv2d_backward_data_stride1(g, dy, weight, dx);
    }
#elif defined(__AVX2__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>)
      if (avx2::backward_data_as_forward(g))
        return avx2::conv2d_backward_data_as_forward(
            g, dy, weight, dx, kernel_choices().winograd_min_channels_for(g.h * g.w), kernel_choices().winograd_tile);
#endif
    im2col_backward_data<T>(g, dy, weight, dx);
  }

  /// From how many channels a side the weight gradient of g runs Winograd on this machine.
  static int weight_gradient_winograd_min_channels(const ConvGeometry& g) {
    return kernel_choices().weight_gradient_winograd_min_channels_for(g.h * g.w);
  }

  /// dweight += dy x^T over the batch (accumulates).
  template <class T>
  static void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dweight) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
      if (bf16_products() && avx512::bf16::backward_weight_applies(g))
        return avx512::bf16::conv2d_backward_weight(g, x, dy, dweight);
#endif
      if (avx512::winograd_applies(g) && std::min(g.c_in, g.c_out) >= weight_gradient_winograd_min_channels(g))
        return avx512::conv2d_winograd_backward_weight(g, x, dy, dweight);
      return avx512::conv2d_backward_weight(g, x, dy, dweight);
    }
#elif defined(__AVX2__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>) {
      if (avx2::winograd_backward_weight_applies(g, weight_gradient_winograd_min_channels(g)))
        return avx2::conv2d_winograd_backward_weight(g, x, dy, dweight);
      if (!is_pointwise(g)) return avx2::conv2d_backward_weight_implicit(g, x, dy, dweight);
    }
#endif
    im2col_backward_weight<T>(g, x, dy, dweight);
  }

  // The portable path, one GEMM (of the policy G) per sample.
  template <class T, class G = Gemm>
  static void im2col_forward(const ConvGeometry& g, const T* x, const T* weight, T* y) {
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    // Float on the AVX2 GEMM: the same product without the im2col matrix (detail/conv_avx2.hpp).
    if constexpr (std::is_same_v<T, float> && std::is_same_v<G, Gemm>)
      if (!is_pointwise(g)) return avx2_forward(g, x, weight, {}, y);
#endif
    const std::int64_t ohw = g.out_hw(), k = g.patch();
    // Samples in parallel, each GEMM single-threaded: one parallel region per call.
#pragma omp parallel for schedule(static) if (g.n > 1 && !omp_in_parallel())
    for (std::int64_t i = 0; i < g.n; ++i) {
      const T* xi = x + i * g.c_in * g.h * g.w;
      const T* col = xi;
      if (!is_pointwise(g)) {
        T* buf = scratch<T>(static_cast<std::size_t>(k * ohw));
        im2col(g, xi, buf);
        col = buf;
      }
      G::template gemm<T>(Trans::No, Trans::No, g.c_out, ohw, k, T(1), weight, k, col, ohw, T(0), y + i * g.c_out * ohw,
                          ohw);
    }
  }

  template <class T, class G = Gemm>
  static void im2col_backward_data(const ConvGeometry& g, const T* dy, const T* weight, T* dx) {
    const std::int64_t ohw = g.out_hw(), k = g.patch();
#pragma omp parallel for schedule(static) if (g.n > 1 && !omp_in_parallel())
    for (std::int64_t i = 0; i < g.n; ++i) {
      T* dxi = dx + i * g.c_in * g.h * g.w;
      const T* dyi = dy + i * g.c_out * ohw;
      if (is_pointwise(g)) {
        G::template gemm<T>(Trans::Yes, Trans::No, k, ohw, g.c_out, T(1), weight, k, dyi, ohw, T(0), dxi, ohw);
        continue;
      }
      T* col = scratch<T>(static_cast<std::size_t>(k * ohw));
      G::template gemm<T>(Trans::Yes, Trans::No, k, ohw, g.c_out, T(1), weight, k, dyi, ohw, T(0), col, ohw);
      std::memset(dxi, 0, static_cast<std::size_t>(g.c_in * g.h * g.w) * sizeof(T));
      col2im_add(g, col, dxi);
    }
  }

  template <class T, class G = Gemm>
  static void im2col_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dweight) {
    const std::int64_t ohw = g.out_hw(), k = g.patch();
    for (std::int64_t i = 0; i < g.n; ++i) {
      const T* xi = x + i * g.c_in * g.h * g.w;
      const T* col = xi;
      if (!is_pointwise(g)) {
        T* buf = scratch<T>(static_cast<std::size_t>(k * ohw));
        im2col(g, xi, buf);
        col = buf;
      }
      G::template gemm<T>(Trans::No, Trans::Yes, g.c_out, k, ohw, T(1), dy + i * g.c_out * ohw, ohw, col, ohw, T(1),
                          dweight, k);
    }
  }
};

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

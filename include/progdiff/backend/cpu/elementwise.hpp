#pragma once
// Element-wise kernels and reductions of the CPU back end: loops over the shared math in
// progdiff/backend/math, threaded with OpenMP when the work is large enough to pay for it.
// Float SiLU on an AVX-512 target runs the vector kernels of detail/vector_math_avx512.hpp, on
// other targets the vectorizable loops of detail/vector_math_portable.hpp.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/vector_math_avx512.hpp"
#include "progdiff/backend/cpu/detail/vector_math_portable.hpp"
#include "progdiff/backend/math/activation.hpp"
#include "progdiff/backend/math/adam.hpp"
#include "progdiff/backend/math/embedding.hpp"
#include "progdiff/backend/math/philox.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

inline constexpr std::int64_t kParallelThreshold = 1 << 15;
inline constexpr std::int64_t kSiluBlock = 1 << 12;
// The float SiLU kernels of this target: AVX-512 vectors, or the same formulas on generic vectors.
#if defined(__AVX512F__)
namespace silu_kernels = avx512;
#else
namespace silu_kernels = portable;
#endif

struct Elementwise {
  /// y += alpha * x
  template <class T>
  static void axpy(std::size_t n, T alpha, const T* x, T* y) {
    const auto len = static_cast<std::int64_t>(n);
#pragma omp parallel for simd if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) y[i] += alpha * x[i];
  }
  /// out = a + b (out may alias a or b)
  template <class T>
  static void add(std::size_t n, const T* a, const T* b, T* out) {
    const auto len = static_cast<std::int64_t>(n);
#pragma omp parallel for simd if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) out[i] = a[i] + b[i];
  }
  /// out = a * b element-wise
  template <class T>
  static void mul(std::size_t n, const T* a, const T* b, T* out) {
    const auto len = static_cast<std::int64_t>(n);
#pragma omp parallel for simd if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) out[i] = a[i] * b[i];
  }
  /// x *= alpha
  template <class T>
  static void scale(std::size_t n, T alpha, T* x) {
    const auto len = static_cast<std::int64_t>(n);
#pragma omp parallel for simd if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) x[i] *= alpha;
  }
  template <class T>
  static double sum(std::size_t n, const T* x) {
    double s = 0.0;
    const auto len = static_cast<std::int64_t>(n);
#pragma omp parallel for reduction(+ : s) if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) s += static_cast<double>(x[i]);
    return s;
  }
  template <class T>
  static double dot(std::size_t n, const T* x, const T* y) {
    double s = 0.0;
    const auto len = static_cast<std::int64_t>(n);
#pragma omp parallel for reduction(+ : s) if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) s += static_cast<double>(x[i]) * static_cast<double>(y[i]);
    return s;
  }
  /// True when every element is finite.
  template <class T>
  static bool all_finite(std::size_t n, const T* x) {
    for (std::size_t i = 0; i < n; ++i)
      if (!std::isfinite(x[i])) return false;
    return true;
  }

  template <class T>
  static void silu_forward(std::size_t n, const T* x, T* y) {
    const auto len = static_cast<std::int64_t>(n);
    if constexpr (std::is_same_v<T, float>) {
      // Blocks of 4096 (a multiple of the vector width) split over the threads.
      const std::int64_t blocks = (len + kSiluBlock - 1) / kSiluBlock;
#pragma omp parallel for schedule(static) if (len > kParallelThreshold)
      for (std::int64_t b = 0; b < blocks; ++b)
        silu_kernels::silu_forward(std::min(kSiluBlock, len - b * kSiluBlock), x + b * kSiluBlock, y + b * kSiluBlock);
      return;
    }
#pragma omp parallel for if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) y[i] = math::silu(x[i]);
  }
  /// dx = dy * silu'(x) (assigns)
  template <class T>
  static void silu_backward(std::size_t n, const T* x, const T* dy, T* dx) {
    const auto len = static_cast<std::int64_t>(n);
    if constexpr (std::is_same_v<T, float>) {
      const std::int64_t blocks = (len + kSiluBlock - 1) / kSiluBlock;
#pragma omp parallel for schedule(static) if (len > kParallelThreshold)
      for (std::int64_t b = 0; b < blocks; ++b)
        silu_kernels::silu_backward(std::min(kSiluBlock, len - b * kSiluBlock), x + b * kSiluBlock, dy + b * kSiluBlock,
                                    dx + b * kSiluBlock);
      return;
    }
#pragma omp parallel for if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) dx[i] = dy[i] * math::silu_derivative(x[i]);
  }

  // x, y: [N, C, HW]; bias: [C]. y[n, c, :] += bias[c]
  template <class T>
  static void add_channel_bias(std::int64_t n, std::int64_t c, std::int64_t hw, const T* bias, T* y) {
#pragma omp parallel for collapse(2) if (n * c * hw > kParallelThreshold)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < c; ++j) {
        T* row = y + (i * c + j) * hw;
        const T b = bias[j];
        for (std::int64_t k = 0; k < hw; ++k) row[k] += b;
      }
  }
  // dy: [N, C, HW]; dbias: [C]. dbias[c] += sum over n and hw (accumulates)
  template <class T>
  static void channel_bias_grad(std::int64_t n, std::int64_t c, std::int64_t hw, const T* dy, T* dbias) {
#pragma omp parallel for if (n * c * hw > kParallelThreshold)
    for (std::int64_t j = 0; j < c; ++j) {
      double s = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        const T* row = dy + (i * c + j) * hw;
        // Vector partial sums over 256-element blocks, added in double: a single double
        // accumulator is one dependent add per element (about 5 ms at 64 x 128 x 32 x 32).
        for (std::int64_t k0 = 0; k0 < hw; k0 += 256) {
          const std::int64_t k1 = std::min<std::int64_t>(hw, k0 + 256);
          T part = T(0);
#pragma omp simd reduction(+ : part)
          for (std::int64_t k = k0; k < k1; ++k) part += row[k];
          s += static_cast<double>(part);
        }
      }
      dbias[j] += static_cast<T>(s);
    }
  }
  // y: [N, C, HW]; e: [N, C]. y[n, c, :] += e[n, c]
  template <class T>
  static void add_sample_channel(std::int64_t n, std::int64_t c, std::int64_t hw, const T* e, T* y) {
#pragma omp parallel for collapse(2) if (n * c * hw > kParallelThreshold)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < c; ++j) {
        T* row = y + (i * c + j) * hw;
        const T b = e[i * c + j];
        for (std::int64_t k = 0; k < hw; ++k) row[k] += b;
      }
  }
  // dy: [N, C, HW]; de: [N, C]. de[n, c] = sum over hw (assigns)
  template <class T>
  static void sample_channel_sum(std::int64_t n, std::int64_t c, std::int64_t hw, const T* dy, T* de) {
#pragma omp parallel for if (n * c * hw > kParallelThreshold)
    for (std::int64_t i = 0; i < n * c; ++i) {
      double s = 0.0;
      for (std::int64_t k = 0; k < hw; ++k) s += static_cast<double>(dy[i * hw + k]);
      de[i] = static_cast<T>(s);
    }
  }

  // x: [N, C, H, W] -> y: [N, C, 2H, 2W], nearest neighbour
  template <class T>
  static void upsample_nearest2x_forward(std::int64_t nc, std::int64_t h, std::int64_t w, const T* x, T* y) {
#pragma omp parallel for if (nc * h * w > kParallelThreshold)
    for (std::int64_t p = 0; p < nc; ++p)
      for (std::int64_t i = 0; i < 2 * h; ++i) {
        const T* src = x + (p * h + i / 2) * w;
        T* dst = y + (p * 2 * h + i) * 2 * w;
        for (std::int64_t j = 0; j < 2 * w; ++j) dst[j] = src[j / 2];
      }
  }
  // dy: [N, C, 2H, 2W] -> dx: [N, C, H, W], sum of the four copies (assigns)
  template <class T>
  static void upsample_nearest2x_backward(std::int64_t nc, std::int64_t h, std::int64_t w, const T* dy, T* dx) {
#pragma omp parallel for if (nc * h * w > kParallelThreshold)
    for (std::int64_t p = 0; p < nc; ++p)
      for (std::int64_t i = 0; i < h; ++i)
        for (std::int64_t j = 0; j < w; ++j) {
          const T* d = dy + (p * 2 * h + 2 * i) * 2 * w + 2 * j;
          dx[(p * h + i) * w + j] = d[0] + d[1] + d[2 * w] + d[2 * w + 1];
        }
  }

  /// Sinusoidal embedding of timesteps t[n] into out[n, dim] (formula in math/embedding.hpp).
  template <class T>
  static void timestep_embedding(std::int64_t n, std::int64_t dim, const T* t, T* out, double max_period,
                                 double shift) {
    // The frequencies once per call, not per element (exp and log cost more than sin).
    const std::int64_t half = dim / 2;
    std::vector<double> freq(static_cast<std::size_t>(half));
    for (std::int64_t k = 0; k < half; ++k) freq[k] = math::timestep_frequency(k, half, max_period, shift);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t k = 0; k < dim; ++k)
        out[i * dim + k] = static_cast<T>(math::timestep_embedding_value_at(
            static_cast<double>(t[i]), k, dim, k < 2 * half ? freq[k < half ? k : k - half] : 0.0));
  }

  /// Inverted dropout with the mask drawn from Philox (seed, stream): element i is kept when
  /// its uniform draw, Philox counter offset + i, exceeds p, and scaled by 1 / (1 - p). The
  /// caller passes x, y = mask * x or, for backward, dy, dx = mask * dy: the mask is recomputed,
  /// never stored. The offset lets a slice of a larger tensor draw that tensor's mask.
  template <class T>
  static void dropout(std::size_t n, double p, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset,
                      const T* x, T* y) {
    const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
    const auto len = static_cast<std::int64_t>(n);
#pragma omp parallel for if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) {
      const bool keep = math::philox_uniform(seed, stream, offset + static_cast<std::uint64_t>(i)) > p;
      y[i] = keep ? x[i] * keep_scale : T(0);
    }
  }

  /// Fills x[n] with standard normals: element i is Philox normal (seed, stream, offset + i).
  template <class T>
  static void normal(std::size_t n, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, T* x) {
    const auto len = static_cast<std::int64_t>(n);
#pragma omp parallel for if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i)
      x[i] = math::philox_normal<T>(seed, stream, offset + static_cast<std::uint64_t>(i));
  }

  template <class T>
  static void adamw(std::size_t n, T* param, const T* grad, T* m, T* v, const math::AdamHyper& hyper, long long step) {
    const auto len = static_cast<std::int64_t>(n);
    const math::AdamBiasCorrection correction = math::adam_bias_correction(hyper, step);  // two pow()s per call
#pragma omp parallel for if (len > kParallelThreshold)
    for (std::int64_t i = 0; i < len; ++i) math::adamw_update(param[i], grad[i], m[i], v[i], hyper, correction);
  }
};

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

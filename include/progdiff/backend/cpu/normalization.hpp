#pragma once
// GroupNorm (alone, or with SiLU fused) and softmax kernels of the CPU back end over the shared math. Float on an
// AVX-512 target takes the vector paths of detail/normalization_avx512.hpp and detail/vector_math_avx512.hpp,
// float on other targets the same formulas as vectorizable loops (detail/vector_math_portable.hpp); double
// runs the scalar math (the references those paths are tested against).
#include <cstdint>
#include <type_traits>
#include <vector>

#include "progdiff/backend/cpu/detail/normalization_avx512.hpp"
#include "progdiff/backend/cpu/detail/vector_math_avx512.hpp"
#include "progdiff/backend/cpu/detail/vector_math_portable.hpp"

#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/math/activation.hpp"
#include "progdiff/backend/math/group_norm.hpp"
#include "progdiff/backend/math/softmax.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

struct Normalization {
  // x, y: [N, C, HW]; gamma, beta: [C]; mean, rstd: [N, G] (written for backward)
  template <class T>
  static void group_norm_forward(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups, double eps,
                                 const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd) {
    group_norm_forward_then<false, T>(n, c, hw, groups, eps, x, gamma, beta, y, mean, rstd);
  }

  /// y = SiLU(GroupNorm(x)) in one pass over each normalized group, the values of
  /// group_norm_forward then silu_forward. The normalized values are not kept:
  /// group_norm_silu_backward recomputes them.
  template <class T>
  static void group_norm_silu_forward(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups, double eps,
                                      const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd) {
    group_norm_forward_then<true, T>(n, c, hw, groups, eps, x, gamma, beta, y, mean, rstd);
  }

  template <bool Silu, class T>
  static void group_norm_forward_then(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups, double eps,
                                      const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd) {
    const std::int64_t cpg = c / groups;
#pragma omp parallel for collapse(2) if (n * c * hw > (1 << 15))
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t g = 0; g < groups; ++g) {
        const std::int64_t base = (i * c + g * cpg) * hw;
        if constexpr (std::is_same_v<T, float>) {
          // Normalized about the float nearest the mean; AVX-512 vectors, or the same formulas on
          // generic vectors (detail/vector_math_portable.hpp).
#if defined(__AVX512F__)
          const math::GroupStats s = avx512::group_norm_stats(x + base, cpg * hw, eps);
#else
          const math::GroupStats s = portable::group_norm_stats(x + base, cpg * hw, eps);
#endif
          mean[i * groups + g] = static_cast<T>(s.mean);
          rstd[i * groups + g] = static_cast<T>(s.rstd);
          const float shift = static_cast<float>(s.mean);
          for (std::int64_t ch = 0; ch < cpg; ++ch) {
            const std::int64_t cc = g * cpg + ch, at = base + ch * hw;
            const double scale = s.rstd * static_cast<double>(gamma[cc]);
            const auto a = static_cast<float>(scale);
            const auto b =
                static_cast<float>(static_cast<double>(beta[cc]) - (s.mean - static_cast<double>(shift)) * scale);
#if defined(__AVX512F__)
            if constexpr (Silu)
              avx512::affine_silu(hw, x + at, shift, a, b, y + at);
            else
              avx512::affine(hw, x + at, shift, a, b, y + at);
#else
            portable::affine_then<Silu>(hw, x + at, shift, a, b, y + at);
#endif
          }
          continue;
        }
        const math::GroupStats s = math::group_norm_stats(x + base, cpg * hw, eps);
        mean[i * groups + g] = static_cast<T>(s.mean);
        rstd[i * groups + g] = static_cast<T>(s.rstd);
        for (std::int64_t ch = 0; ch < cpg; ++ch) {
          const std::int64_t cc = g * cpg + ch, at = base + ch * hw;
          const double a = s.rstd * static_cast<double>(gamma[cc]);
          const double b = static_cast<double>(beta[cc]) - s.mean * a;
          for (std::int64_t k = 0; k < hw; ++k) {
            const T v = static_cast<T>(static_cast<double>(x[at + k]) * a + b);
            y[at + k] = Silu ? math::silu(v) : v;
          }
        }
      }
  }

  /// The backward of y = SiLU(GroupNorm(x)) for dy = dL/dy: dx assigned, dgamma and dbeta
  /// accumulated. The normalized values v are recomputed from x and the statistics; the
  /// gradient dy * silu'(v) is formed in dx as the first pass over each group reads it.
  template <class T>
  static void group_norm_silu_backward(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups, const T* x,
                                       const T* dy, const T* mean, const T* rstd, const T* gamma, const T* beta, T* dx,
                                       T* dgamma, T* dbeta) {
    if constexpr (std::is_same_v<T, float>) {
      group_norm_backward_float(n, c, hw, groups, x, dy, mean, rstd, gamma, beta, dx, dgamma, dbeta);
      return;
    }
    const std::int64_t cpg = c / groups;
#pragma omp parallel for collapse(2) if (n * c * hw > (1 << 15))
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t cc = 0; cc < c; ++cc) {
        const double mu = mean[i * groups + cc / cpg], rs = rstd[i * groups + cc / cpg];
        const double a = rs * static_cast<double>(gamma[cc]), b = static_cast<double>(beta[cc]) - mu * a;
        for (std::int64_t k = (i * c + cc) * hw, end = k + hw; k < end; ++k) {
          const T v = static_cast<T>(static_cast<double>(x[k]) * a + b);
          dx[k] = dy[k] * math::silu_derivative(v);
        }
      }
    // GroupNorm's backward with dx as its incoming gradient, in place (it reads each element
    // of its dy before it writes that element of dx).
    group_norm_backward<T>(n, c, hw, groups, x, dx, mean, rstd, gamma, dx, dgamma, dbeta);
  }

  // dx assigned; dgamma, dbeta accumulated. dx may alias dy.
  template <class T>
  static void group_norm_backward(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups, const T* x,
                                  const T* dy, const T* mean, const T* rstd, const T* gamma, T* dx, T* dgamma,
                                  T* dbeta) {
    const std::int64_t cpg = c / groups;
    if constexpr (std::is_same_v<T, float>) {
      group_norm_backward_float(n, c, hw, groups, x, dy, mean, rstd, gamma, nullptr, dx, dgamma, dbeta);
      return;
    }
    // Parameter gradients: per channel, reduce over samples.
#pragma omp parallel for if (n * c * hw > (1 << 15))
    for (std::int64_t cc = 0; cc < c; ++cc) {
      double sg = 0.0, sb = 0.0;
      const std::int64_t g = cc / cpg;
      for (std::int64_t i = 0; i < n; ++i) {
        const double mu = mean[i * groups + g], rs = rstd[i * groups + g];
        const T* xr = x + (i * c + cc) * hw;
        const T* dr = dy + (i * c + cc) * hw;
        for (std::int64_t k = 0; k < hw; ++k) {
          sg += static_cast<double>(dr[k]) * (static_cast<double>(xr[k]) - mu) * rs;
          sb += static_cast<double>(dr[k]);
        }
      }
      dgamma[cc] += static_cast<T>(sg);
      dbeta[cc] += static_cast<T>(sb);
    }
#pragma omp parallel for collapse(2) if (n * c * hw > (1 << 15))
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t g = 0; g < groups; ++g) {
        const std::int64_t base = (i * c + g * cpg) * hw;
        const double mu = mean[i * groups + g], rs = rstd[i * groups + g];
        double sum_g = 0.0, sum_gx = 0.0;
        for (std::int64_t ch = 0; ch < cpg; ++ch) {
          const double gm = gamma[g * cpg + ch];
          for (std::int64_t k = 0; k < hw; ++k) {
            const std::int64_t idx = base + ch * hw + k;
            const double gv = static_cast<double>(dy[idx]) * gm;
            sum_g += gv;
            sum_gx += gv * (static_cast<double>(x[idx]) - mu) * rs;
          }
        }
        const double count = static_cast<double>(cpg * hw);
        const double mean_g = sum_g / count, mean_gx = sum_gx / count;
        for (std::int64_t ch = 0; ch < cpg; ++ch) {
          const double gm = gamma[g * cpg + ch];
          for (std::int64_t k = 0; k < hw; ++k) {
            const std::int64_t idx = base + ch * hw + k;
            const double xhat = (static_cast<double>(x[idx]) - mu) * rs;
            dx[idx] = static_cast<T>(math::group_norm_dx(static_cast<double>(dy[idx]) * gm, xhat, rs, mean_g, mean_gx));
          }
        }
      }
  }

  /// The float backward in two passes over each group (the reference makes four): per channel
  /// plane sum(dy) and sum(dy * (x - mean)), kept per sample for dgamma and dbeta; then
  /// math::group_norm_dx with g = dy * gamma, expanded per channel into
  /// dx = a * dy + b * (x - shift) + c (shift: the float nearest the mean). With `beta` given,
  /// the GroupNorm feeds a SiLU and dy is the SiLU's output gradient: the first pass turns it
  /// into the normalized values' gradient, stored in dx for the second. The kernels are those
  /// of detail/normalization_avx512.hpp on AVX-512, the same formulas on generic vectors
  /// (detail/vector_math_portable.hpp) elsewhere.
  static void group_norm_backward_float(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups,
                                        const float* x, const float* dy, const float* mean, const float* rstd,
                                        const float* gamma, const float* beta, float* dx, float* dgamma, float* dbeta) {
#if defined(__AVX512F__)
    namespace vec = avx512;
#else
    namespace vec = portable;
#endif
    const float* grad = beta ? dx : dy;  // what the second pass reads as the normalized values' gradient
    const std::int64_t cpg = c / groups;
    std::vector<double> sum_dy(static_cast<std::size_t>(n * c)), sum_dy_xhat(static_cast<std::size_t>(n * c));
#pragma omp parallel for collapse(2) if (n * c * hw > (1 << 15))
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t g = 0; g < groups; ++g) {
        const std::int64_t base = (i * c + g * cpg) * hw;
        const double mu = mean[i * groups + g], rs = rstd[i * groups + g];
        const float shift = static_cast<float>(mu);
        double sum_g = 0.0, sum_gx = 0.0;
        for (std::int64_t ch = 0; ch < cpg; ++ch) {
          const std::int64_t cc = g * cpg + ch;
          const std::int64_t off = base + ch * hw;
          // The SiLU's input as group_norm_silu_forward computed it: (x - shift) * rstd * gamma +
          // beta, shift being the stored mean itself here.
          const vec::PlaneSums p =
              beta ? vec::silu_grad_plane_sums(hw, x + off, dy + off, shift, static_cast<float>(rs * gamma[cc]),
                                               beta[cc], dx + off)
                   : vec::plane_sums(hw, x + off, dy + off, shift);
          // sum(dy * xhat) = rstd * (sum(dy * (x - shift)) + (shift - mean) * sum(dy))
          const double dy_xhat = rs * (p.dy_x + (static_cast<double>(shift) - mu) * p.dy);
          sum_dy[static_cast<std::size_t>(i * c + cc)] = p.dy;
          sum_dy_xhat[static_cast<std::size_t>(i * c + cc)] = dy_xhat;
          sum_g += static_cast<double>(gamma[cc]) * p.dy;
          sum_gx += static_cast<double>(gamma[cc]) * dy_xhat;
        }
        const double count = static_cast<double>(cpg * hw);
        const double mean_g = sum_g / count, mean_gx = sum_gx / count;
        // dx = rs * (gamma dy - mean_g - xhat mean_gx), xhat = (x - shift) rs + (shift - mu) rs
        const double b = -rs * rs * mean_gx;
        const double c0 = -rs * mean_g - rs * rs * mean_gx * (static_cast<double>(shift) - mu);
        for (std::int64_t ch = 0; ch < cpg; ++ch) {
          const std::int64_t off = base + ch * hw;
          vec::affine2(hw, grad + off, x + off, shift, static_cast<float>(rs * gamma[g * cpg + ch]),
                       static_cast<float>(b), static_cast<float>(c0), dx + off);
        }
      }
    for (std::int64_t cc = 0; cc < c; ++cc) {
      double sg = 0.0, sb = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        sg += sum_dy_xhat[static_cast<std::size_t>(i * c + cc)];
        sb += sum_dy[static_cast<std::size_t>(i * c + cc)];
      }
      dgamma[cc] += static_cast<float>(sg);
      dbeta[cc] += static_cast<float>(sb);
    }
  }

  // x, y: [rows, cols]; y = softmax(scale * x) per row
  template <class T>
  static void softmax_rows(std::int64_t rows, std::int64_t cols, T scale, const T* x, T* y) {
#pragma omp parallel for if (rows * cols > (1 << 15))
    for (std::int64_t r = 0; r < rows; ++r) {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        avx512::softmax_row(x + r * cols, y + r * cols, cols, scale);
        continue;
      }
#endif
      math::softmax_row(x + r * cols, y + r * cols, cols, scale);
    }
  }
  // dx assigned
  template <class T>
  static void softmax_rows_backward(std::int64_t rows, std::int64_t cols, T scale, const T* y, const T* dy, T* dx) {
#pragma omp parallel for if (rows * cols > (1 << 15))
    for (std::int64_t r = 0; r < rows; ++r) {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        avx512::softmax_row_backward(y + r * cols, dy + r * cols, dx + r * cols, cols, scale);
        continue;
      }
#endif
      math::softmax_row_backward(y + r * cols, dy + r * cols, dx + r * cols, cols, scale);
    }
  }
};

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

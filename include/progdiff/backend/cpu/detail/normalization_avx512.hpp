#pragma once
// Float32 GroupNorm statistics and affine normalization on AVX-512 (with SiLU fused, for the
// GroupNorm + SiLU pairs of a ResBlock). The reference
// (math::group_norm_stats) makes two passes in double; this makes one pass, summing
// x - shift and (x - shift)^2 in float per vector lane over short blocks and adding each
// block's lanes into double accumulators. The shift (the group's first value) keeps the
// one-pass variance free of cancellation when |mean| >> std. The group (at most a few
// channel planes) stays in L1/L2 for the normalizing pass.
#if defined(__AVX512F__)
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/vector_math_avx512.hpp"
#include "progdiff/backend/math/group_norm.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx512 {

/// Mean and 1 / sqrt(biased variance + eps) of x[0, count), as math::group_norm_stats.
inline math::GroupStats group_norm_stats(const float* x, std::int64_t count, double eps) {
  constexpr std::int64_t kBlock = 256;  // floats per lane-sum before it moves to double
  const __m512 shift = _mm512_set1_ps(x[0]);
  __m512d s1_lo = _mm512_setzero_pd(), s1_hi = _mm512_setzero_pd();
  __m512d s2_lo = _mm512_setzero_pd(), s2_hi = _mm512_setzero_pd();
  for (std::int64_t b0 = 0; b0 < count; b0 += kBlock) {
    const std::int64_t end = b0 + kBlock < count ? b0 + kBlock : count;
    __m512 s1a = _mm512_setzero_ps(), s1b = _mm512_setzero_ps();
    __m512 s2a = _mm512_setzero_ps(), s2b = _mm512_setzero_ps();
    std::int64_t i = b0;
    for (; i + 32 <= end; i += 32) {
      const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), shift);
      const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), shift);
      s1a = _mm512_add_ps(s1a, d0);
      s1b = _mm512_add_ps(s1b, d1);
      s2a = _mm512_fmadd_ps(d0, d0, s2a);
      s2b = _mm512_fmadd_ps(d1, d1, s2b);
    }
    for (; i < end; i += 16) {
      const __mmask16 m = end - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (end - i)) - 1u);
      const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), shift);
      s1a = _mm512_add_ps(s1a, d);
      s2a = _mm512_fmadd_ps(d, d, s2a);
    }
    s1a = _mm512_add_ps(s1a, s1b);
    s2a = _mm512_add_ps(s2a, s2b);
    s1_lo = _mm512_add_pd(s1_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(s1a)));
    s1_hi = _mm512_add_pd(s1_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s1a), 1))));
    s2_lo = _mm512_add_pd(s2_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(s2a)));
    s2_hi = _mm512_add_pd(s2_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s2a), 1))));
  }
  const double n = static_cast<double>(count);
  const double s1 = _mm512_reduce_add_pd(_mm512_add_pd(s1_lo, s1_hi));
  const double s2 = _mm512_reduce_add_pd(_mm512_add_pd(s2_lo, s2_hi));
  const double mean_shifted = s1 / n;
  const double var = std::fmax(s2 / n - mean_shifted * mean_shifted, 0.0);
  return math::GroupStats{static_cast<double>(x[0]) + mean_shifted, 1.0 / std::sqrt(var + eps)};
}

/// y[i] = (x[i] - shift) * a + b for i < n. With shift the float nearest the group mean,
/// x - shift is exact for values near the mean, so a large |mean| / std costs no accuracy.
inline void affine(std::int64_t n, const float* x, float shift, float a, float b, float* y) {
  const __m512 vs = _mm512_set1_ps(shift), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vs), va, vb));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs), va, vb));
  }
}

/// affine followed by SiLU: y[i] = SiLU((x[i] - shift) * a + b) for i < n, each value the one
/// affine and silu_forward give in two passes.
inline void affine_silu(std::int64_t n, const float* x, float shift, float a, float b, float* y) {
  const __m512 vs = _mm512_set1_ps(shift), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs), va, vb);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, sigmoid_ps(v)));
  }
}

/// Lane sums of one channel plane for GroupNorm's backward: sum(dy) and sum(dy * (x - shift)),
/// in float per lane over blocks, double across blocks (as group_norm_stats).
struct PlaneSums {
  double dy, dy_x;
};

inline PlaneSums plane_sums(std::int64_t n, const float* x, const float* dy, float shift) {
  constexpr std::int64_t kBlock = 256;
  const __m512 vs = _mm512_set1_ps(shift);
  double total_dy = 0.0, total_dy_x = 0.0;
  for (std::int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const std::int64_t end = b0 + kBlock < n ? b0 + kBlock : n;
    __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps();
    for (std::int64_t i = b0; i < end; i += 16) {
      const __mmask16 m = end - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (end - i)) - 1u);
      const __m512 d = _mm512_maskz_loadu_ps(m, dy + i);
      const __m512 xs = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vs);
      s1 = _mm512_add_ps(s1, d);
      s2 = _mm512_fmadd_ps(d, xs, s2);
    }
    total_dy += static_cast<double>(_mm512_reduce_add_ps(s1));
    total_dy_x += static_cast<double>(_mm512_reduce_add_ps(s2));
  }
  return PlaneSums{total_dy, total_dy_x};
}

/// plane_sums of the gradient that reaches the normalized values through a SiLU,
/// g[i] = dy[i] * silu'(v[i]) with v[i] = (x[i] - shift) * a + b recomputed as affine_silu
/// computed it; g is stored to `g` (which may be dy) for the second pass of the backward.
inline PlaneSums silu_grad_plane_sums(std::int64_t n, const float* x, const float* dy, float shift, float a, float b,
                                      float* g) {
  constexpr std::int64_t kBlock = 256;
  const __m512 vs = _mm512_set1_ps(shift), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), one = _mm512_set1_ps(1.0f);
  double total_g = 0.0, total_g_x = 0.0;
  for (std::int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const std::int64_t end = b0 + kBlock < n ? b0 + kBlock : n;
    __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps();
    for (std::int64_t i = b0; i < end; i += 16) {
      const __mmask16 m = end - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (end - i)) - 1u);
      const __m512 xs = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vs);
      const __m512 v = _mm512_fmadd_ps(xs, va, vb);
      const __m512 s = sigmoid_ps(v);
      // silu'(v) = s (1 + v (1 - s)), as silu_backward; masked-off lanes have dy = 0, so g = 0.
      const __m512 d = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i),
                                     _mm512_mul_ps(s, _mm512_fmadd_ps(v, _mm512_sub_ps(one, s), one)));
      _mm512_mask_storeu_ps(g + i, m, d);
      s1 = _mm512_add_ps(s1, d);
      s2 = _mm512_fmadd_ps(d, xs, s2);
    }
    total_g += static_cast<double>(_mm512_reduce_add_ps(s1));
    total_g_x += static_cast<double>(_mm512_reduce_add_ps(s2));
  }
  return PlaneSums{total_g, total_g_x};
}

/// dx[i] = a * dy[i] + b * (x[i] - shift) + c for i < n.
inline void affine2(std::int64_t n, const float* dy, const float* x, float shift, float a, float b, float c,
                    float* dx) {
  const __m512 vs = _mm512_set1_ps(shift), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), vc = _mm512_set1_ps(c);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 xs = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
    const __m512 r = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, dy + i), _mm512_fmadd_ps(vb, xs, vc));
    _mm512_mask_storeu_ps(dx + i, m, r);
  }
}

}  // namespace progdiff::backend::cpu::avx512
PROGDIFF_KERNELS_END
#endif

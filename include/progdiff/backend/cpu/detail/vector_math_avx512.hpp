#pragma once
// Float32 element-wise kernels on 16-lane AVX-512 vectors: exp, SiLU and its derivative, and
// the row softmax. They evaluate the same formulas as progdiff/backend/math (the scalar
// references, also used by double and non-AVX-512 builds); only exp differs, being a
// polynomial instead of libm's. tests/cpu_elementwise_test.cpp bounds the difference.
#if defined(__AVX512F__)
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx512 {

/// e^x, within 2 ulp of the correctly rounded value over the whole float range (the error
/// bound is checked against double-precision exp in the tests). Cody-Waite reduction
/// x = n ln2 + r, |r| <= ln2 / 2, a degree-6 minimax polynomial for e^r (Cephes' expf
/// coefficients), then scalef multiplies by 2^n, which also gives 0 for large negative x,
/// inf for large positive x, and passes NaN through.
inline __m512 exp_ps(__m512 x) {
  // Past [-104, 89] e^x is 0 or inf in float; clamping keeps n within the reduction's exact
  // range. (Constant first: max/min return their second operand for NaN, so NaN survives.)
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2 split into a part exact in float times any |n| < 2^9 and the remainder.
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

/// sigmoid(x) as math::sigmoid computes it: with e = exp(-|x|), 1 / (1 + e) for x >= 0 and
/// e / (1 + e) otherwise, so neither branch overflows.
inline __m512 sigmoid_ps(__m512 x) {
  const __m512 abs_x = _mm512_abs_ps(x);
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), abs_x));
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_mul_ps(t, negative, e, t);
}

/// y[i] = x[i] * sigmoid(x[i]) for i < n (math::silu).
inline void silu_forward(std::int64_t n, const float* x, float* y) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    _mm512_storeu_ps(y + i, _mm512_mul_ps(v, sigmoid_ps(v)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, sigmoid_ps(v)));
  }
}

/// dx[i] = dy[i] * s (1 + x (1 - s)), s = sigmoid(x[i]) (math::silu_derivative).
inline void silu_backward(std::int64_t n, const float* x, const float* dy, float* dx) {
  const __m512 one = _mm512_set1_ps(1.0f);
  auto grad = [&](__m512 v, __m512 d) {
    const __m512 s = sigmoid_ps(v);
    const __m512 deriv = _mm512_mul_ps(s, _mm512_fmadd_ps(v, _mm512_sub_ps(one, s), one));
    return _mm512_mul_ps(d, deriv);
  };
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dx + i, grad(_mm512_loadu_ps(x + i), _mm512_loadu_ps(dy + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(dx + i, m, grad(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, dy + i)));
  }
}

/// y = softmax(scale * x) over one row of n (math::softmax_row); y may alias x.
inline void softmax_row(const float* x, float* y, std::int64_t n, float scale) {
  const __m512 vs = _mm512_set1_ps(scale);
  const std::int64_t full = n & ~std::int64_t(15);
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - full)) - 1u);
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (std::int64_t i = 0; i < full; i += 16) vmax = _mm512_max_ps(vmax, _mm512_mul_ps(_mm512_loadu_ps(x + i), vs));
  if (tail) vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + full), vs));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512 vsum = _mm512_setzero_ps();
  for (std::int64_t i = 0; i < full; i += 16) {
    const __m512 e = exp_ps(_mm512_fmsub_ps(_mm512_loadu_ps(x + i), vs, m));
    _mm512_storeu_ps(y + i, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  if (tail) {
    const __m512 e = exp_ps(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(tail, x + full), vs, m));
    _mm512_mask_storeu_ps(y + full, tail, e);
    vsum = _mm512_mask_add_ps(vsum, tail, vsum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
  for (std::int64_t i = 0; i < full; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
  if (tail) _mm512_mask_storeu_ps(y + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + full), inv));
}

/// dx = scale * y * (dy - sum(dy * y)) over one row (math::softmax_row_backward); dx may
/// alias y or dy.
inline void softmax_row_backward(const float* y, const float* dy, float* dx, std::int64_t n, float scale) {
  const std::int64_t full = n & ~std::int64_t(15);
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - full)) - 1u);
  __m512 vdot = _mm512_setzero_ps();
  for (std::int64_t i = 0; i < full; i += 16)
    vdot = _mm512_fmadd_ps(_mm512_loadu_ps(dy + i), _mm512_loadu_ps(y + i), vdot);
  if (tail) vdot = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, dy + full), _mm512_maskz_loadu_ps(tail, y + full), vdot);
  const __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(vdot)), vs = _mm512_set1_ps(scale);
  for (std::int64_t i = 0; i < full; i += 16) {
    const __m512 sy = _mm512_mul_ps(vs, _mm512_loadu_ps(y + i));
    _mm512_storeu_ps(dx + i, _mm512_mul_ps(sy, _mm512_sub_ps(_mm512_loadu_ps(dy + i), dot)));
  }
  if (tail) {
    const __m512 sy = _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(tail, y + full));
    _mm512_mask_storeu_ps(dx + full, tail,
                          _mm512_mul_ps(sy, _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, dy + full), dot)));
  }
}

}  // namespace progdiff::backend::cpu::avx512
PROGDIFF_KERNELS_END
#endif

#pragma once
// Float32 exp, SiLU and its derivative, and GroupNorm's statistics, for targets without AVX-512 (AVX2 CPUs such as AMD
// Zen 2/3, ARM): written on GCC's generic 8-float vectors, which the compiler lowers to the vector unit it targets (one
// AVX2 register, two SSE or NEON registers), so no libm call and no branch per element. They evaluate the formulas of
// detail/vector_math_avx512.hpp: the same reduction and polynomial, the same sigmoid. (Plain loops would stay scalar:
// GCC does not vectorize a loop with float comparisons while they may trap, which is its default.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/math/group_norm.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::portable {

using Floats = float __attribute__((vector_size(32)));
using Ints = std::int32_t __attribute__((vector_size(32)));
inline constexpr std::int64_t kLanes = 8;

inline Floats broadcast(float v) { return Floats{} + v; }

/// e^x per lane within 2 ulp over the float range (tests/cpu_elementwise_test.cpp checks it
/// against double-precision exp): x = n ln2 + r, |r| <= ln2 / 2, Cephes' degree-6 polynomial
/// for e^r, then 2^n as two exponent-field scalings, so that results below 2^-126 come out
/// subnormal and e^x past float's range infinite. NaN passes through.
inline Floats exp_poly(Floats x) {
  // Past [-104, 89] e^x is 0 or inf in float; clamping keeps n within the reduction's range.
  Floats c = x < -104.0f ? broadcast(-104.0f) : x;
  c = c > 89.0f ? broadcast(89.0f) : c;
  const Ints nan = x != x;
  c = nan ? broadcast(0.0f) : c;
  // Round to nearest by the 1.5 * 2^23 trick (exact for |x log2 e| < 2^22).
  const Floats n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  Floats r = c - n * 0.693359375f;  // ln2 split: this part times any |n| < 2^9 is exact
  r = r - n * -2.12194440e-4f;
  Floats p = broadcast(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + (r + 1.0f);
  const Ints ni = __builtin_convertvector(n, Ints);  // in [-150, 128]
  const Ints half = ni / 2;
  const Floats s1 = reinterpret_cast<Floats>((half + 127) << 23);
  const Floats s2 = reinterpret_cast<Floats>((ni - half + 127) << 23);
  const Floats y = p * s1 * s2;
  return nan ? x : y;
}

/// sigmoid(x) through e = exp(-|x|): 1 / (1 + e) for x >= 0, e / (1 + e) otherwise.
inline Floats sigmoid(Floats x) {
  const Ints negative = x < 0.0f;
  const Floats e = exp_poly(negative ? x : -x);
  const Floats t = 1.0f / (1.0f + e);
  return negative ? e * t : t;
}

inline Floats silu(Floats x) { return x * sigmoid(x); }

/// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
inline Floats silu_derivative(Floats x) {
  const Floats s = sigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}

/// The first `count` (< kLanes) floats at p, zeros after them.
inline Floats load_partial(const float* p, std::int64_t count) {
  Floats v{};
  std::memcpy(&v, p, static_cast<std::size_t>(count) * sizeof(float));
  return v;
}

inline Floats load(const float* p) {
  Floats v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

/// The first `count` floats of v to p. A whole vector is one store even where count is only
/// known at run time: a variable-length copy of 8 floats was a `rep movs`, 17% of a Winograd
/// output transform.
inline void store(float* p, Floats v, std::int64_t count = kLanes) {
  if (count == kLanes)
    std::memcpy(p, &v, sizeof(v));
  else
    std::memcpy(p, &v, static_cast<std::size_t>(count) * sizeof(float));
}

/// Applies f to [0, n) of the arrays, kLanes at a time: f(offset, lanes) with lanes < kLanes
/// only for the last call.
template <class F>
void for_each_vector(std::int64_t n, F&& f) {
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) f(i, kLanes);
  if (i < n) f(i, n - i);
}

inline Floats load_lanes(const float* p, std::int64_t lanes) {
  return lanes == kLanes ? load(p) : load_partial(p, lanes);
}

/// y[i] = silu(x[i]) for i < n.
inline void silu_forward(std::int64_t n, const float* x, float* y) {
  for_each_vector(n, [&](std::int64_t i, std::int64_t lanes) { store(y + i, silu(load_lanes(x + i, lanes)), lanes); });
}

/// dx[i] = dy[i] * silu'(x[i]) for i < n.
inline void silu_backward(std::int64_t n, const float* x, const float* dy, float* dx) {
  for_each_vector(n, [&](std::int64_t i, std::int64_t lanes) {
    store(dx + i, load_lanes(dy + i, lanes) * silu_derivative(load_lanes(x + i, lanes)), lanes);
  });
}

/// y[i] = (x[i] - shift) * a + b, then SiLU where Silu, for i < n.
template <bool Silu>
void affine_then(std::int64_t n, const float* x, float shift, float a, float b, float* y) {
  for_each_vector(n, [&](std::int64_t i, std::int64_t lanes) {
    const Floats v = (load_lanes(x + i, lanes) - shift) * a + b;
    store(y + i, Silu ? silu(v) : v, lanes);
  });
}

/// Mean and 1 / sqrt(biased variance + eps) of x[0, count), as math::group_norm_stats but in
/// one pass: x - x[0] and its square summed in float per lane over blocks of 256, each block's
/// lanes then added in double (the AVX-512 kernel's scheme, detail/normalization_avx512.hpp). The
/// shift by the first value keeps the one-pass variance free of cancellation when |mean| >> std.
inline math::GroupStats group_norm_stats(const float* x, std::int64_t count, double eps) {
  constexpr std::int64_t kBlock = 256;
  const float shift = x[0];
  double s1 = 0.0, s2 = 0.0;
  for (std::int64_t b0 = 0; b0 < count; b0 += kBlock) {
    const std::int64_t end = b0 + kBlock < count ? b0 + kBlock : count;
    Floats s1a{}, s1b{}, s2a{}, s2b{};
    std::int64_t i = b0;
    for (; i + 2 * kLanes <= end; i += 2 * kLanes) {
      const Floats d0 = load(x + i) - shift, d1 = load(x + i + kLanes) - shift;
      s1a += d0;
      s1b += d1;
      s2a += d0 * d0;
      s2b += d1 * d1;
    }
    for (; i < end; i += kLanes) {
      const std::int64_t lanes = end - i < kLanes ? end - i : kLanes;
      const Ints live = Ints{0, 1, 2, 3, 4, 5, 6, 7} < static_cast<std::int32_t>(lanes);
      const Floats d = live ? load_lanes(x + i, lanes) - shift : Floats{};
      s1a += d;
      s2a += d * d;
    }
    s1a += s1b;
    s2a += s2b;
    for (std::int64_t lane = 0; lane < kLanes; ++lane) {
      s1 += static_cast<double>(s1a[lane]);
      s2 += static_cast<double>(s2a[lane]);
    }
  }
  const double n = static_cast<double>(count);
  const double mean_shifted = s1 / n;
  const double var = std::fmax(s2 / n - mean_shifted * mean_shifted, 0.0);
  return math::GroupStats{static_cast<double>(shift) + mean_shifted, 1.0 / std::sqrt(var + eps)};
}

/// A channel plane's sums for GroupNorm's backward: sum(dy) and sum(dy (x - shift)).
struct PlaneSums {
  double dy, dy_x;
};

/// The sum of a vector's lanes, in double.
inline double lane_sum(Floats v) {
  double total = 0.0;
  for (std::int64_t lane = 0; lane < kLanes; ++lane) total += static_cast<double>(v[lane]);
  return total;
}

/// sum(d) and sum(d (x - shift)) over [0, n), d = gradient(i, lanes, x - shift) for each vector
/// at i: float per lane over blocks of 256, each block's lanes then added in double (the AVX-512
/// kernel's scheme, detail/normalization_avx512.hpp).
template <class Gradient>
PlaneSums blocked_plane_sums(std::int64_t n, const float* x, float shift, Gradient&& gradient) {
  constexpr std::int64_t kBlock = 256;
  PlaneSums total{0.0, 0.0};
  for (std::int64_t b0 = 0; b0 < n; b0 += kBlock) {
    Floats s1{}, s2{};
    for_each_vector(std::min(kBlock, n - b0), [&](std::int64_t i, std::int64_t lanes) {
      const Floats xs = load_lanes(x + b0 + i, lanes) - shift;
      const Floats d = gradient(b0 + i, lanes, xs);  // zeros past the end: they add nothing
      s1 += d;
      s2 += d * xs;
    });
    total.dy += lane_sum(s1);
    total.dy_x += lane_sum(s2);
  }
  return total;
}

/// PlaneSums of x[0, n) and dy[0, n).
inline PlaneSums plane_sums(std::int64_t n, const float* x, const float* dy, float shift) {
  return blocked_plane_sums(n, x, shift,
                            [&](std::int64_t i, std::int64_t lanes, Floats) { return load_lanes(dy + i, lanes); });
}

/// plane_sums of the gradient that reaches the normalized values through a SiLU,
/// g[i] = dy[i] silu'(v[i]) with v[i] = (x[i] - shift) a + b recomputed as affine_then<true>
/// computed it; g is stored to `g` (which may be dy) for the second pass of the backward.
inline PlaneSums silu_grad_plane_sums(std::int64_t n, const float* x, const float* dy, float shift, float a, float b,
                                      float* g) {
  return blocked_plane_sums(n, x, shift, [&](std::int64_t i, std::int64_t lanes, Floats xs) {
    const Floats d = load_lanes(dy + i, lanes) * silu_derivative(xs * a + b);
    store(g + i, d, lanes);
    return d;
  });
}

/// dx[i] = a dy[i] + b (x[i] - shift) + c for i < n.
inline void affine2(std::int64_t n, const float* dy, const float* x, float shift, float a, float b, float c,
                    float* dx) {
  for_each_vector(n, [&](std::int64_t i, std::int64_t lanes) {
    const Floats xs = load_lanes(x + i, lanes) - shift;
    store(dx + i, a * load_lanes(dy + i, lanes) + (b * xs + c), lanes);
  });
}

}  // namespace progdiff::backend::cpu::portable
PROGDIFF_KERNELS_END

// The CPU back end's float fast paths (AVX-512 exp, SiLU, softmax, one-pass GroupNorm, GroupNorm + SiLU, and the
// vectorizable exp and SiLU that targets without AVX-512 run) against the scalar formulas of
// progdiff/backend/math evaluated in double.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <tuple>
#include <type_traits>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/detail/vector_math_portable.hpp"
#include "progdiff/backend/math/activation.hpp"
#include "progdiff/backend/math/group_norm.hpp"
#include "progdiff/backend/math/softmax.hpp"

namespace progdiff_tests_cpu_elementwise {

namespace {

using progdiff::backend::Cpu;
namespace math = progdiff::math;

/// |got - want| in units of the float spacing at want (ulp of the correctly rounded result).
double ulp_error(float got, double want) {
  const float rounded = static_cast<float>(want);
  if (std::isinf(rounded) || rounded == 0.0f) return got == rounded ? 0.0 : INFINITY;
  const double spacing =
      std::nextafter(std::fabs(rounded), std::numeric_limits<float>::infinity()) - std::fabs(rounded);
  return std::fabs(static_cast<double>(got) - want) / spacing;
}

/// Inputs covering [-lo, hi] densely plus the special values.
std::vector<float> sweep(float lo, float hi, int count) {
  std::vector<float> v;
  for (int i = 0; i <= count; ++i) v.push_back(lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(count));
  for (float s : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 88.0f, -88.0f, 100.0f, -100.0f, 1e30f, -1e30f})
    v.push_back(s);
  return v;
}

}  // namespace

TEST_CASE("The portable float exp is within 2 ulp of exp in double over the float range") {
  namespace portable = progdiff::backend::cpu::portable;
  // Lane 0 of each function on a vector of one value (every lane computes the same formula).
  const auto exp_poly = [](float x) { return portable::exp_poly(portable::broadcast(x))[0]; };
  const auto silu = [](float x) { return portable::silu(portable::broadcast(x))[0]; };
  const auto silu_derivative = [](float x) { return portable::silu_derivative(portable::broadcast(x))[0]; };
  double worst = 0, worst_subnormal = 0;
  for (const float x : sweep(-103.0f, 88.7f, 400000)) {
    const float got = exp_poly(x);
    const double want = std::exp(static_cast<double>(x));
    if (want < std::numeric_limits<float>::min()) {  // subnormal results: absolute error
      worst_subnormal = std::max(worst_subnormal, std::fabs(got - want));
      continue;
    }
    worst = std::max(worst, ulp_error(got, want));
  }
  MESSAGE("worst portable exp error: " << worst << " ulp");
  CHECK(worst <= 2.0);
  CHECK(worst_subnormal <= 2.0 * std::numeric_limits<float>::denorm_min());
  // Limits: 0 for very negative, inf for overflow, NaN passes through.
  CHECK(exp_poly(-1e30f) == 0.0f);
  CHECK(exp_poly(-200.0f) == 0.0f);
  CHECK(exp_poly(-INFINITY) == 0.0f);
  CHECK(std::isinf(exp_poly(89.0f)));
  CHECK(std::isinf(exp_poly(1e30f)));
  CHECK(std::isinf(exp_poly(INFINITY)));
  CHECK(std::isnan(exp_poly(NAN)));
  CHECK(exp_poly(0.0f) == 1.0f);
  // SiLU and its derivative on the same formulas, against math:: in double.
  double worst_silu = 0, worst_derivative = 0;
  for (const float x : sweep(-90.0f, 90.0f, 20000)) {
    worst_silu = std::max(worst_silu, std::fabs(silu(x) - math::silu(static_cast<double>(x))) /
                                          std::max(1.0, std::fabs(static_cast<double>(x))));
    worst_derivative = std::max(worst_derivative, std::fabs(silu_derivative(x) - math::silu_derivative(double(x))));
  }
  CHECK(worst_silu <= 1e-6);
  CHECK(worst_derivative <= 1e-6);
}

#if defined(__AVX512F__)
TEST_CASE("AVX-512 exp is within 2 ulp of exp in double over the float range") {
  const std::vector<float> xs = sweep(-103.0f, 88.7f, 400000);
  std::vector<float> got(xs.size());
  for (std::size_t i = 0; i + 16 <= xs.size(); i += 16)
    _mm512_storeu_ps(got.data() + i, progdiff::backend::cpu::avx512::exp_ps(_mm512_loadu_ps(xs.data() + i)));
  double worst = 0, worst_subnormal = 0;
  for (std::size_t i = 0; i + 16 <= xs.size(); ++i) {
    const double want = std::exp(static_cast<double>(xs[i]));
    if (want < std::numeric_limits<float>::min()) {  // subnormal results: absolute error
      worst_subnormal = std::max(worst_subnormal, std::fabs(got[i] - want));
      continue;
    }
    worst = std::max(worst, ulp_error(got[i], want));
  }
  MESSAGE("worst exp error: " << worst << " ulp");
  CHECK(worst <= 2.0);
  CHECK(worst_subnormal <= 2.0 * std::numeric_limits<float>::denorm_min());
  // Limits: 0 for very negative, inf for overflow, NaN passes through.
  float out[16];
  const __m512 special = _mm512_setr_ps(-1e30f, -200.0f, 89.0f, 1e30f, INFINITY, -INFINITY, NAN, 0.0f, 1.0f, -1.0f,
                                        0.5f, -0.5f, 10.0f, -10.0f, 2.0f, -2.0f);
  _mm512_storeu_ps(out, progdiff::backend::cpu::avx512::exp_ps(special));
  CHECK(out[0] == 0.0f);
  CHECK(out[1] == 0.0f);
  CHECK(std::isinf(out[2]));
  CHECK(std::isinf(out[3]));
  CHECK(std::isinf(out[4]));
  CHECK(out[5] == 0.0f);
  CHECK(std::isnan(out[6]));
  CHECK(out[7] == 1.0f);
}
#endif

TEST_CASE("Cpu SiLU forward and backward match math::silu in double") {
  // 1e5 + 7 elements: the threaded path and a partial last vector.
  std::vector<float> x = sweep(-30.0f, 30.0f, 100000);
  x.resize(100007, 0.25f);
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> dy(x.size()), y(x.size()), dx(x.size());
  for (auto& v : dy) v = dist(gen);
  Cpu::silu_forward(x.size(), x.data(), y.data());
  Cpu::silu_backward(x.size(), x.data(), dy.data(), dx.data());
  double worst_y = 0, worst_dx = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double xd = x[i];
    const double want_y = math::silu(xd), want_dx = static_cast<double>(dy[i]) * math::silu_derivative(xd);
    // Relative to the magnitude of the terms: silu' sums s and x s (1 - s), which cancel near x = -1.28.
    const double scale_y = std::max(std::fabs(want_y), 1e-30);
    const double scale_dx =
        std::fabs(static_cast<double>(dy[i])) * std::max(1e-30, std::fabs(math::sigmoid(xd)) * (1.0 + std::fabs(xd)));
    worst_y = std::max(worst_y, std::fabs(y[i] - want_y) / scale_y);
    worst_dx = std::max(worst_dx, std::fabs(dx[i] - want_dx) / scale_dx);
  }
  MESSAGE("worst SiLU relative error: forward " << worst_y << ", backward " << worst_dx);
  CHECK(worst_y <= 4 * std::numeric_limits<float>::epsilon());
  CHECK(worst_dx <= 8 * std::numeric_limits<float>::epsilon());
  float nan_in = NAN, nan_out = 0.0f;
  Cpu::silu_forward(1, &nan_in, &nan_out);
  CHECK(std::isnan(nan_out));
}

TEST_CASE("Cpu softmax rows and their gradient match math::softmax_row in double") {
  for (std::int64_t cols : {1, 5, 16, 37, 256}) {
    CAPTURE(cols);
    const std::int64_t rows = 300;  // threaded when rows * cols is large
    std::mt19937 gen(static_cast<std::uint32_t>(cols));
    std::uniform_real_distribution<float> dist(-20.0f, 20.0f);
    std::vector<float> x(rows * cols), y(rows * cols), dy(rows * cols), dx(rows * cols);
    for (auto& v : x) v = dist(gen);
    for (auto& v : dy) v = dist(gen) / 20.0f;
    const float scale = 0.35f;
    Cpu::softmax_rows(rows, cols, scale, x.data(), y.data());
    Cpu::softmax_rows_backward(rows, cols, scale, y.data(), dy.data(), dx.data());
    double worst_y = 0, worst_dx = 0;
    std::vector<double> xd(cols), yd(cols), dyd(cols), dxd(cols);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t j = 0; j < cols; ++j) xd[j] = x[r * cols + j], dyd[j] = dy[r * cols + j];
      math::softmax_row(xd.data(), yd.data(), cols, static_cast<double>(scale));
      // The gradient of the float forward output y, so only the backward formula is compared.
      for (std::int64_t j = 0; j < cols; ++j) yd[j] = y[r * cols + j];
      math::softmax_row_backward(yd.data(), dyd.data(), dxd.data(), cols, static_cast<double>(scale));
      math::softmax_row(xd.data(), yd.data(), cols, static_cast<double>(scale));
      for (std::int64_t j = 0; j < cols; ++j) {
        worst_y = std::max(worst_y, std::fabs(y[r * cols + j] - yd[j]));
        worst_dx = std::max(worst_dx, std::fabs(dx[r * cols + j] - dxd[j]));
      }
    }
    // Probabilities are <= 1: absolute error a few float epsilons.
    CHECK(worst_y <= 1e-6);
    CHECK(worst_dx <= 1e-6);
  }
}

TEST_CASE("Cpu GroupNorm forward in float matches the two-pass double statistics") {
  // Groups with |mean| >> std test the shifted one-pass variance; odd HW tests the tails.
  for (const auto& [hw, offset, spread] :
       {std::tuple{1024, 0.0, 1.0}, std::tuple{37, 3.0, 0.5}, std::tuple{64, 1000.0, 0.01}, std::tuple{1, 0.0, 2.0}}) {
    CAPTURE(hw);
    CAPTURE(offset);
    const std::int64_t n = 3, c = 8, groups = 4, cpg = c / groups;
    std::mt19937 gen(11);
    std::normal_distribution<double> dist(offset, spread);
    std::vector<float> x(n * c * hw), gamma(c), beta(c), y(x.size()), mean(n * groups), rstd(n * groups);
    for (auto& v : x) v = static_cast<float>(dist(gen));
    for (std::int64_t j = 0; j < c; ++j) gamma[j] = 0.5f + 0.1f * j, beta[j] = -0.3f + 0.05f * j;
    const double eps = 1e-5;
    Cpu::group_norm_forward<float>(n, c, hw, groups, eps, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                   rstd.data());
    std::vector<double> xd(x.begin(), x.end());
    double worst_y = 0;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t g = 0; g < groups; ++g) {
        const std::int64_t base = (i * c + g * cpg) * hw;
        const math::GroupStats s = math::group_norm_stats(xd.data() + base, cpg * hw, eps);
        CHECK(std::fabs(mean[i * groups + g] - s.mean) <= 1e-6 * std::max(1.0, std::fabs(s.mean)));
        CHECK(std::fabs(rstd[i * groups + g] - s.rstd) <= 1e-5 * s.rstd);
        for (std::int64_t ch = 0; ch < cpg; ++ch)
          for (std::int64_t k = 0; k < hw; ++k) {
            const std::int64_t idx = base + ch * hw + k, cc = g * cpg + ch;
            const double want = (xd[idx] - s.mean) * s.rstd * gamma[cc] + beta[cc];
            worst_y = std::max(worst_y, std::fabs(y[idx] - want));
          }
      }
    MESSAGE("worst GroupNorm output error: " << worst_y);
    // Outputs are O(1): a few float ulps, also when |mean| / std = 1e5.
    CHECK(worst_y <= 2e-6);
  }
}

TEST_CASE("Cpu GroupNorm backward in float matches the double reference kernel") {
  for (const auto& [hw, offset] : {std::tuple{1024, 0.0}, std::tuple{37, 3.0}, std::tuple{64, 500.0}}) {
    CAPTURE(hw);
    CAPTURE(offset);
    const std::int64_t n = 3, c = 8, groups = 4;
    std::mt19937 gen(5);
    std::normal_distribution<double> dist(0.0, 1.0);
    std::vector<double> x(n * c * hw), dy(x.size()), gamma(c), beta(c, 0.0), y(x.size()), mean(n * groups),
        rstd(n * groups);
    for (auto& v : x) v = static_cast<float>(offset + 0.1 * dist(gen));  // float-representable
    for (auto& v : dy) v = static_cast<float>(dist(gen));
    for (std::int64_t j = 0; j < c; ++j) gamma[j] = 0.5 + 0.1 * static_cast<double>(j);
    // Reference: the double kernel (scalar math) on the same values.
    Cpu::group_norm_forward<double>(n, c, hw, groups, 1e-5, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                    rstd.data());
    // Both kernels see the statistics rounded to float, as the float layer stores them.
    for (auto& v : mean) v = static_cast<float>(v);
    for (auto& v : rstd) v = static_cast<float>(v);
    std::vector<double> dx(x.size()), dgamma(c, 0.25), dbeta(c, -0.5);
    Cpu::group_norm_backward<double>(n, c, hw, groups, x.data(), dy.data(), mean.data(), rstd.data(), gamma.data(),
                                     dx.data(), dgamma.data(), dbeta.data());
    const std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end()), gammaf(gamma.begin(), gamma.end()),
        meanf(mean.begin(), mean.end()), rstdf(rstd.begin(), rstd.end());
    std::vector<float> dxf(x.size()), dgammaf(c, 0.25f), dbetaf(c, -0.5f);
    Cpu::group_norm_backward<float>(n, c, hw, groups, xf.data(), dyf.data(), meanf.data(), rstdf.data(), gammaf.data(),
                                    dxf.data(), dgammaf.data(), dbetaf.data());
    // Errors relative to each tensor's scale.
    auto max_abs = [](const std::vector<double>& v) {
      double m = 0;
      for (double e : v) m = std::max(m, std::fabs(e));
      return m;
    };
    double worst_dx = 0, worst_dg = 0, worst_db = 0;
    for (std::size_t i = 0; i < dx.size(); ++i) worst_dx = std::max(worst_dx, std::fabs(dxf[i] - dx[i]));
    for (std::int64_t j = 0; j < c; ++j) {
      worst_dg = std::max(worst_dg, std::fabs(dgammaf[j] - dgamma[j]));
      worst_db = std::max(worst_db, std::fabs(dbetaf[j] - dbeta[j]));
    }
    MESSAGE("GroupNorm backward errors: dx " << worst_dx / max_abs(dx) << ", dgamma " << worst_dg / max_abs(dgamma)
                                             << ", dbeta " << worst_db / max_abs(dbeta));
    CHECK(worst_dx <= 1e-5 * max_abs(dx));
    CHECK(worst_dg <= 1e-5 * max_abs(dgamma));
    CHECK(worst_db <= 1e-5 * max_abs(dbeta));
  }
}

namespace {

// y = SiLU(GroupNorm(x)) and its backward from the definitions, in double, with two-pass statistics.
struct GroupNormSiluReference {
  std::vector<double> mean, rstd, y, dx, dgamma, dbeta;
};

template <class T>
GroupNormSiluReference group_norm_silu_reference(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups,
                                                 double eps, const std::vector<T>& x, const std::vector<T>& gamma,
                                                 const std::vector<T>& beta, const std::vector<T>& dy) {
  const std::int64_t cpg = c / groups, count = cpg * hw;
  GroupNormSiluReference r{std::vector<double>(n * groups), std::vector<double>(n * groups),
                           std::vector<double>(x.size()),   std::vector<double>(x.size()),
                           std::vector<double>(c, 0.0),     std::vector<double>(c, 0.0)};
  std::vector<double> xhat(count), dxhat(count);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t g = 0; g < groups; ++g) {
      const std::int64_t base = (i * c + g * cpg) * hw;
      double sum = 0, sq = 0;
      for (std::int64_t k = 0; k < count; ++k) sum += static_cast<double>(x[base + k]);
      const double mu = sum / static_cast<double>(count);
      for (std::int64_t k = 0; k < count; ++k) sq += (x[base + k] - mu) * (x[base + k] - mu);
      const double rs = 1.0 / std::sqrt(sq / static_cast<double>(count) + eps);
      r.mean[i * groups + g] = mu;
      r.rstd[i * groups + g] = rs;
      double mean_dxhat = 0, mean_dxhat_xhat = 0;
      for (std::int64_t k = 0; k < count; ++k) {
        const std::int64_t idx = base + k, cc = g * cpg + k / hw;
        xhat[k] = (static_cast<double>(x[idx]) - mu) * rs;
        const double v = xhat[k] * gamma[cc] + beta[cc], s = 1.0 / (1.0 + std::exp(-v));
        r.y[idx] = v * s;
        const double dv = dy[idx] * (s + v * s * (1.0 - s));  // d/dv of v * sigmoid(v)
        r.dgamma[cc] += dv * xhat[k];
        r.dbeta[cc] += dv;
        dxhat[k] = dv * gamma[cc];
        mean_dxhat += dxhat[k] / static_cast<double>(count);
        mean_dxhat_xhat += dxhat[k] * xhat[k] / static_cast<double>(count);
      }
      for (std::int64_t k = 0; k < count; ++k)
        r.dx[base + k] = rs * (dxhat[k] - mean_dxhat - xhat[k] * mean_dxhat_xhat);
    }
  return r;
}

template <class T>
double worst_relative(const std::vector<T>& got, const std::vector<double>& want) {
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return worst / scale;
}

}  // namespace

TEST_CASE_TEMPLATE("Cpu GroupNorm + SiLU fused forward and backward match the definitions in double", T, float,
                   double) {
  // Odd HW tests the vector tails; a large offset the shifted one-pass statistics.
  for (const auto& [hw, offset] : {std::tuple{256, 0.0}, std::tuple{37, 3.0}, std::tuple{64, 200.0}}) {
    CAPTURE(hw);
    CAPTURE(offset);
    const std::int64_t n = 3, c = 8, groups = 2;
    std::mt19937 gen(17);
    std::normal_distribution<double> dist(offset, 1.5), unit(0.0, 1.0);
    std::vector<T> x(n * c * hw), dy(x.size()), gamma(c), beta(c), y(x.size()), mean(n * groups), rstd(n * groups);
    for (auto& v : x) v = static_cast<T>(dist(gen));
    for (auto& v : dy) v = static_cast<T>(unit(gen));
    for (std::int64_t j = 0; j < c; ++j) gamma[j] = T(0.5) + T(0.3) * T(j), beta[j] = T(-0.6) + T(0.2) * T(j);
    const double eps = 1e-5;
    const GroupNormSiluReference want = group_norm_silu_reference(n, c, hw, groups, eps, x, gamma, beta, dy);

    Cpu::group_norm_silu_forward<T>(n, c, hw, groups, eps, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                    rstd.data());
    for (std::int64_t k = 0; k < n * groups; ++k) {
      CHECK(std::fabs(mean[k] - want.mean[k]) <= 1e-6 * std::max(1.0, std::fabs(want.mean[k])));
      CHECK(std::fabs(rstd[k] - want.rstd[k]) <= 1e-5 * want.rstd[k]);
    }
    // Values are O(1): a few ulps of T (SiLU's slope is below 1.1).
    const double bound = std::is_same_v<T, float> ? 4e-6 : 1e-12;
    double worst_y = 0;
    for (std::size_t i = 0; i < y.size(); ++i) worst_y = std::max(worst_y, std::fabs(y[i] - want.y[i]));
    CHECK(worst_y <= bound);

    // The same values as the two kernels one after the other.
    std::vector<T> normalized(x.size()), y_two(x.size());
    Cpu::group_norm_forward<T>(n, c, hw, groups, eps, x.data(), gamma.data(), beta.data(), normalized.data(),
                               mean.data(), rstd.data());
    Cpu::silu_forward<T>(normalized.size(), normalized.data(), y_two.data());
    CHECK(y_two == y);

    // The backward accumulates the parameter gradients into what is there.
    std::vector<T> dx(x.size(), T(NAN)), dgamma(c, T(0.25)), dbeta(c, T(-0.5));
    Cpu::group_norm_silu_backward<T>(n, c, hw, groups, x.data(), dy.data(), mean.data(), rstd.data(), gamma.data(),
                                     beta.data(), dx.data(), dgamma.data(), dbeta.data());
    for (std::int64_t j = 0; j < c; ++j) dgamma[j] -= T(0.25), dbeta[j] += T(0.5);
    const double relative = std::is_same_v<T, float> ? 1e-5 : 1e-10;
    MESSAGE("GroupNorm + SiLU backward errors: dx " << worst_relative(dx, want.dx) << ", dgamma "
                                                    << worst_relative(dgamma, want.dgamma) << ", dbeta "
                                                    << worst_relative(dbeta, want.dbeta));
    CHECK(worst_relative(dx, want.dx) <= relative);
    CHECK(worst_relative(dgamma, want.dgamma) <= relative);
    CHECK(worst_relative(dbeta, want.dbeta) <= relative);
  }
}

}  // namespace progdiff_tests_cpu_elementwise

// The CPU back end's GEMM (packed AVX-512 or AVX2 kernel for float where compiled, Eigen otherwise)
// against the plain-loop reference evaluated in double.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernel_support.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/gemm_reference.hpp"

namespace progdiff_tests_cpu_gemm {

namespace {

using progdiff::Trans;
using progdiff::backend::Cpu;
namespace reference = progdiff::backend::cpu::reference;

using progdiff::test::cast;
using progdiff::test::uniform;

// Float sums of k products of numbers in [-1, 1] carry rounding of order k * eps.
template <class T>
double tolerance(std::int64_t k) {
  return std::is_same_v<T, float> ? 1e-5 + 3e-7 * double(k) : 1e-12 + 1e-15 * double(k);
}

enum class Path { Dispatch, Eigen };

template <class T>
void check_gemm(Path path, Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
                double beta) {
  // Leading dimensions larger than the rows, so strides are exercised.
  const std::int64_t a_rows = ta == Trans::No ? m : k, a_cols = ta == Trans::No ? k : m;
  const std::int64_t b_rows = tb == Trans::No ? k : n, b_cols = tb == Trans::No ? n : k;
  const std::int64_t lda = a_cols + 3, ldb = b_cols + 5, ldc = n + 2;
  const auto a = uniform(std::size_t(a_rows * lda), 1), b = uniform(std::size_t(b_rows * ldb), 2);
  auto c_ref = uniform(std::size_t(m * ldc), 3);
  std::vector<T> c = cast<T>(c_ref);
  // beta == 0 must not read C: NaNs there would leak into the result.
  if (beta == 0.0)
    for (auto& x : c) x = std::numeric_limits<T>::quiet_NaN();
  const auto at = cast<T>(a), bt = cast<T>(b);
  if (path == Path::Dispatch)
    Cpu::gemm<T>(ta, tb, m, n, k, T(alpha), at.data(), lda, bt.data(), ldb, T(beta), c.data(), ldc);
  else
    Cpu::gemm_eigen<T>(ta, tb, m, n, k, T(alpha), at.data(), lda, bt.data(), ldb, T(beta), c.data(), ldc);
  reference::gemm<double>(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c_ref.data(), ldc);
  double worst = 0;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      const double err = std::abs(double(c[i * ldc + j]) - c_ref[i * ldc + j]);
      worst = std::isnan(err) ? INFINITY : std::max(worst, err);
    }
  INFO("m=", m, " n=", n, " k=", k, " ta=", int(ta), " tb=", int(tb), " alpha=", alpha, " beta=", beta);
  CHECK(worst <= tolerance<T>(k));
}

}  // namespace

TEST_CASE_TEMPLATE("Cpu::gemm matches plain loops for every transpose and odd sizes", T, float, double) {
  const std::int64_t sizes[] = {1, 7, 33, 129};
  for (Path path : {Path::Dispatch, Path::Eigen})
    for (Trans ta : {Trans::No, Trans::Yes})
      for (Trans tb : {Trans::No, Trans::Yes})
        for (std::int64_t m : sizes)
          for (std::int64_t n : sizes)
            for (std::int64_t k : sizes) check_gemm<T>(path, ta, tb, m, n, k, 1.0, 0.0);
}

TEST_CASE_TEMPLATE("Cpu::gemm scales by alpha and beta and blocks over large k", T, float, double) {
  for (Trans ta : {Trans::No, Trans::Yes})
    for (Trans tb : {Trans::No, Trans::Yes}) {
      check_gemm<T>(Path::Dispatch, ta, tb, 70, 300, 600, 0.5, 1.0);  // several k blocks, m and n edges
      check_gemm<T>(Path::Dispatch, ta, tb, 131, 257, 520, -1.5, 0.25);
      check_gemm<T>(Path::Dispatch, ta, tb, 6, 64, 1, 2.0, -1.0);  // exactly one micro-tile
    }
}

TEST_CASE("Cpu::gemm covers every micro-tile shape: 1-6 rows by each vector count, whole and masked") {
  // m = 6q + r gives a last panel of r rows; n = 64q + c (AVX-512) or 16q + c (AVX2) a last
  // panel of c columns: 1-4 vectors of 16 or 1-2 vectors of 8, whole and masked.
  for (std::int64_t m : {1, 2, 3, 4, 5, 6, 10, 11})
    for (std::int64_t n : {3, 8, 16, 20, 24, 32, 45, 48, 60, 64, 96})
      for (Trans ta : {Trans::No, Trans::Yes}) check_gemm<float>(Path::Dispatch, ta, Trans::No, m, n, 37, 1.5, 0.5);
}

TEST_CASE("Cpu::gemm with k = 0 scales C by beta") {
  std::vector<float> c = {1, 2, 3, 4};
  Cpu::gemm<float>(Trans::No, Trans::No, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
  CHECK(c == std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f});
}

TEST_CASE_TEMPLATE("Cpu::gemm_strided_batched runs each member against plain loops", T, float, double) {
  const std::int64_t m = 13, n = 70, k = 37, batch = 5;
  const auto a = uniform(std::size_t(batch * m * k), 4), b = uniform(std::size_t(batch * n * k), 5);
  std::vector<double> c_ref(std::size_t(batch * m * n), 0.0);
  std::vector<T> c(c_ref.size(), T(0));
  const auto at = cast<T>(a), bt = cast<T>(b);
  Cpu::gemm_strided_batched<T>(Trans::No, Trans::Yes, m, n, k, T(1), at.data(), k, m * k, bt.data(), k, n * k, T(0),
                               c.data(), n, m * n, batch);
  for (std::int64_t i = 0; i < batch; ++i)
    reference::gemm<double>(Trans::No, Trans::Yes, m, n, k, 1.0, a.data() + i * m * k, k, b.data() + i * n * k, k, 0.0,
                            c_ref.data() + i * m * n, n);
  double worst = 0;
  for (std::size_t i = 0; i < c.size(); ++i) worst = std::max(worst, std::abs(double(c[i]) - c_ref[i]));
  CHECK(worst <= tolerance<T>(k));
}

}  // namespace progdiff_tests_cpu_gemm

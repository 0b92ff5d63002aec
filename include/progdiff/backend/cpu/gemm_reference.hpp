#pragma once
// Plain-loop GEMM, the reference every fast path is tested against (accumulates in double).
#include <cstdint>

#include "progdiff/backend/backend.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

// Compiled like the kernels it checks (optimized_kernels.hpp): plain loops either way, but a
// sanitized test at -O0 spent most of its time in them.
PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::reference {

/// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, all row-major (BLAS sgemm/dgemm).
template <class T>
void gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda,
          const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double sum = 0.0;
      for (std::int64_t p = 0; p < k; ++p) {
        const double av = ta == Trans::No ? a[i * lda + p] : a[p * lda + i];
        const double bv = tb == Trans::No ? b[p * ldb + j] : b[j * ldb + p];
        sum += av * bv;
      }
      T& out = c[i * ldc + j];
      out = static_cast<T>(double(alpha) * sum + (beta == T(0) ? 0.0 : double(beta) * double(out)));
    }
}

}  // namespace progdiff::backend::cpu::reference
PROGDIFF_KERNELS_END

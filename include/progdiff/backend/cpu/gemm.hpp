#pragma once
// GEMM for the CPU back end. Single precision runs the packed AVX-512 kernel of
// detail/sgemm_avx512.hpp when the compiler targets AVX-512, the packed AVX2 kernel of
// detail/sgemm_avx2.hpp when it targets AVX2 and FMA only; everything else (double, or a CPU
// with neither) goes through Eigen maps over row-major buffers. Both thread a single GEMM
// with OpenMP (Eigen from kEigenThreadedMinFlops up); a batch runs its members in parallel, each
// single-threaded (neither nests inside an active parallel region). The plain-loop reference is gemm_reference.hpp.
#include <omp.h>

#include <Eigen/Core>
#include <cstdint>
#include <type_traits>

#include "progdiff/backend/backend.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/sgemm_avx2.hpp"
#include "progdiff/backend/cpu/detail/sgemm_avx512.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

struct Gemm {
  template <class T>
  using MatrixMap =
      Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;
  template <class T>
  using ConstMatrixMap =
      Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;

  /// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, all row-major.
  template <class T>
  static void gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                   std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
    // float never reaches Eigen here, so a program that does not ask for Eigen's GEMM does not
    // compile it (its product kernels are slow to compile).
    if constexpr (std::is_same_v<T, float>) {
      if (m == 0 || n == 0) return;
      if (k == 0) {
        scale_rows(m, n, beta, c, ldc);
        return;
      }
#if defined(__AVX512F__)
      avx512::sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
      avx2::sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
    } else {
      gemm_eigen(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
#else
    gemm_eigen(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
  }

  /// C = beta C for an m x n matrix with leading dimension ldc (beta 0 clears, NaNs included).
  template <class T>
  static void scale_rows(std::int64_t m, std::int64_t n, T beta, T* c, std::int64_t ldc) {
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
  }

  /// Eigen threads every product of 100,000 FLOPs or more over all OpenMP threads, and its
  /// threads wait for each other by spinning: where other work shares the cores (two tests side
  /// by side, a training run beside), a thread spins while the one it waits for is descheduled.
  /// Products below this many FLOPs (about a millisecond of one core in double) run on the
  /// calling thread alone.
  static constexpr double kEigenThreadedMinFlops = 1 << 24;

  /// Lowers the calling thread's OpenMP thread count to 1 for its lifetime where `single`
  /// (omp_set_num_threads sets the calling task's own count, which Eigen reads; no other
  /// thread's), and puts it back.
  class SingleThreadedScope {
   public:
    explicit SingleThreadedScope(bool single) : saved_(single ? omp_get_max_threads() : 0) {
      if (saved_ > 1) omp_set_num_threads(1);
    }
    ~SingleThreadedScope() {
      if (saved_ > 1) omp_set_num_threads(saved_);
    }
    SingleThreadedScope(const SingleThreadedScope&) = delete;
    SingleThreadedScope& operator=(const SingleThreadedScope&) = delete;

   private:
    int saved_;
  };

  /// The portable path: Eigen's blocked GEMM.
  template <class T>
  static void gemm_eigen(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                         std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
    if (m == 0 || n == 0) return;
    MatrixMap<T> C(c, m, n, Eigen::OuterStride<>(ldc));
    if (k == 0) {
      if (beta == T(0))
        C.setZero();
      else
        C *= beta;
      return;
    }
    const auto A = ConstMatrixMap<T>(a, ta == Trans::No ? m : k, ta == Trans::No ? k : m, Eigen::OuterStride<>(lda));
    const auto B = ConstMatrixMap<T>(b, tb == Trans::No ? k : n, tb == Trans::No ? n : k, Eigen::OuterStride<>(ldb));
    if (beta == T(0))
      C.setZero();
    else if (beta != T(1))
      C *= beta;
    const SingleThreadedScope small(2.0 * double(m) * double(n) * double(k) < kEigenThreadedMinFlops);
    if (ta == Trans::No && tb == Trans::No)
      C.noalias() += alpha * A * B;
    else if (ta == Trans::No)
      C.noalias() += alpha * A * B.transpose();
    else if (tb == Trans::No)
      C.noalias() += alpha * A.transpose() * B;
    else
      C.noalias() += alpha * A.transpose() * B.transpose();
  }

  template <class T>
  static void gemm_strided_batched(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                                   const T* a, std::int64_t lda, std::int64_t stride_a, const T* b, std::int64_t ldb,
                                   std::int64_t stride_b, T beta, T* c, std::int64_t ldc, std::int64_t stride_c,
                                   std::int64_t batch) {
#pragma omp parallel for schedule(static) if (batch > 1)
    for (std::int64_t i = 0; i < batch; ++i)
      gemm(ta, tb, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
  }
};

/// Gemm restricted to its Eigen path: the portable baseline, for comparisons and tests.
struct EigenGemm {
  template <class T, class... Args>
  static void gemm(Args... args) {
    Gemm::gemm_eigen<T>(args...);
  }
};

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

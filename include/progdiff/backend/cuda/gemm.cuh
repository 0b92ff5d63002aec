#pragma once
// Row-major GEMM on cuBLAS (column-major): a row-major C = op(A) op(B) is the column-major
// C^T = op(B)^T op(A)^T, so the operands swap places and keep their own transposes.
#include <cublas_v2.h>

#include <cstdint>
#include <type_traits>

#include "progdiff/backend/backend.hpp"
#include "progdiff/backend/cuda/check.cuh"
#include "progdiff/backend/cuda/context.cuh"

namespace progdiff::backend::cuda {

struct Gemm {
  static cublasOperation_t op(Trans t) { return t == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

  template <class T>
  static void gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                   std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "CUDA GEMM supports float and double");
    if (m == 0 || n == 0) return;
    auto h = Context::current().cublas();
    if constexpr (std::is_same_v<T, float>)
      PROGDIFF_CUBLAS_CHECK(
          cublasSgemm(h, op(tb), op(ta), int(n), int(m), int(k), &alpha, b, int(ldb), a, int(lda), &beta, c, int(ldc)));
    else
      PROGDIFF_CUBLAS_CHECK(
          cublasDgemm(h, op(tb), op(ta), int(n), int(m), int(k), &alpha, b, int(ldb), a, int(lda), &beta, c, int(ldc)));
  }

  template <class T>
  static void gemm_strided_batched(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                                   const T* a, std::int64_t lda, std::int64_t stride_a, const T* b, std::int64_t ldb,
                                   std::int64_t stride_b, T beta, T* c, std::int64_t ldc, std::int64_t stride_c,
                                   std::int64_t batch) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "CUDA GEMM supports float and double");
    if (m == 0 || n == 0 || batch == 0) return;
    auto h = Context::current().cublas();
    if constexpr (std::is_same_v<T, float>)
      PROGDIFF_CUBLAS_CHECK(cublasSgemmStridedBatched(h, op(tb), op(ta), int(n), int(m), int(k), &alpha, b, int(ldb),
                                                      stride_b, a, int(lda), stride_a, &beta, c, int(ldc), stride_c,
                                                      int(batch)));
    else
      PROGDIFF_CUBLAS_CHECK(cublasDgemmStridedBatched(h, op(tb), op(ta), int(n), int(m), int(k), &alpha, b, int(ldb),
                                                      stride_b, a, int(lda), stride_a, &beta, c, int(ldc), stride_c,
                                                      int(batch)));
  }
};

}  // namespace progdiff::backend::cuda

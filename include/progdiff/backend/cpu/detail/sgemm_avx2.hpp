#pragma once
// Single-precision GEMM for CPUs with AVX2 and FMA but without AVX-512 (AMD Zen 2/3, Intel
// before Ice Lake): the packed driver of detail/packed_sgemm.hpp on a 6x16 micro-kernel. Its 12
// ymm accumulators, 2 B vectors and one broadcast fill 15 of the 16 ymm registers; per k step it
// issues 12 FMAs against 8 loads, so the two FMA pipes of such a core set the pace.
// Only compiled when the compiler targets AVX2 and FMA and not AVX-512.
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/packed_sgemm.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx2 {

/// Lanes [0, live) of an 8-float vector, as the mask _mm256_maskload_ps and _mm256_maskstore_ps take.
inline __m256i lane_mask(std::int64_t live) {
  const auto n = static_cast<int>(std::clamp<std::int64_t>(live, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// C tile [MR x nvalid] = alpha * A[MR x kc] * B[kc x nvalid] + beta * C, the MR floats of A at
/// step k at a + k a_step, the 16 of B at b + k b_step. NV 8-float vectors cover nvalid; unless
/// FullN (nvalid == 8 NV) the last is masked at the store. The sum over k runs in the same order
/// whatever the tile shape. Inlined into the two kernels below, the packed one with its steps
/// as constants; not instrumented either, as they are not (an instrumented body inlined into
/// an uninstrumented function poisons its locals' stack at the end of their scope and nothing
/// unpoisons it, so AddressSanitizer then reports the next function to use that stack).
template <int MR, int NV, bool FullN>
[[gnu::always_inline, gnu::no_sanitize_address]] inline void micro_tile(std::int64_t kc, const float* a,
                                                                        std::int64_t a_step, const float* b,
                                                                        std::int64_t b_step, std::int64_t nvalid,
                                                                        float alpha, float beta, float* c,
                                                                        std::int64_t ldc) {
  static_assert(MR >= 1 && MR <= 6 && NV >= 1 && NV <= 2, "an AVX2 micro-tile is at most 6 rows by 2 vectors");
  __m256 acc[MR][NV];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_setzero_ps();

  for (std::int64_t k = 0; k < kc; ++k, a += a_step, b += b_step) {
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j) bv[j] = _mm256_loadu_ps(b + 8 * j);  // lanes past nvalid never reach C
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 2
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_fmadd_ps(ai, bv[j], acc[i][j]);
    }
  }

  __m256i mask[NV];
  for (int j = 0; j < NV; ++j) mask[j] = lane_mask(nvalid - 8 * j);
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j) {
      __m256 r = _mm256_mul_ps(va, acc[i][j]);
      if (beta != 0.0f) {
        const __m256 old = FullN ? _mm256_loadu_ps(ci + 8 * j) : _mm256_maskload_ps(ci + 8 * j, mask[j]);
        r = _mm256_fmadd_ps(vb, old, r);
      }
      if (FullN)
        _mm256_storeu_ps(ci + 8 * j, r);
      else
        _mm256_maskstore_ps(ci + 8 * j, mask[j], r);
    }
  }
}

/// micro_tile on A packed [kc][6] and B packed [kc][16]. Not instrumented by AddressSanitizer
/// (nor is the strided one): it reads only the panels its driver sized, and a check per load
/// would double a sanitized run's time in it (the packing stays checked).
template <int MR, int NV, bool FullN>
[[gnu::noinline, gnu::no_sanitize_address]] void micro_kernel_tile(std::int64_t kc, const float* a, const float* b,
                                                                   std::int64_t nvalid, float alpha, float beta,
                                                                   float* c, std::int64_t ldc) {
  micro_tile<MR, NV, FullN>(kc, a, 6, b, 16, nvalid, alpha, beta, c, ldc);
}

/// micro_tile on operands read in place with run-time steps (the Winograd weight gradient's
/// transformed tiles, channels along the rows).
template <int MR, int NV, bool FullN>
[[gnu::noinline, gnu::no_sanitize_address]] void micro_kernel_tile_strided(std::int64_t kc, const float* a,
                                                                           std::int64_t a_step, const float* b,
                                                                           std::int64_t b_step, std::int64_t nvalid,
                                                                           float alpha, float beta, float* c,
                                                                           std::int64_t ldc) {
  micro_tile<MR, NV, FullN>(kc, a, a_step, b, b_step, nvalid, alpha, beta, c, ldc);
}

/// The micro-kernel as detail/packed_sgemm.hpp's driver takes it.
struct Kernel {
  static constexpr std::int64_t kMr = 6;         // rows of C per micro-tile (broadcast side)
  static constexpr std::int64_t kNr = 16;        // columns of C per micro-tile (2 ymm vectors)
  static constexpr std::int64_t kKc = 256;       // k-block: A panel 6 KiB and B panel 16 KiB in L1
  static constexpr std::int64_t kNcPanels = 16;  // B panels per chunk: 256 KiB of B in L2

  /// The tile [mvalid x nvalid] (1..6 by 1..16) by the micro_kernel_tile of exactly its shape.
  static void tile(std::int64_t kc, const float* a, std::int64_t mvalid, const float* b, std::int64_t nvalid,
                   float alpha, float beta, float* c, std::int64_t ldc) {
    by_shape(mvalid, nvalid, [&]<int MR, int NV, bool FullN>() {
      micro_kernel_tile<MR, NV, FullN>(kc, a, b, nvalid, alpha, beta, c, ldc);
    });
  }

  /// The same with A's MR floats of step k at a + k a_step and B's 16 at b + k b_step; the lanes
  /// of B past nvalid in its last vector are read but do not reach C.
  static void tile_strided(std::int64_t kc, const float* a, std::int64_t a_step, std::int64_t mvalid, const float* b,
                           std::int64_t b_step, std::int64_t nvalid, float alpha, float beta, float* c,
                           std::int64_t ldc) {
    by_shape(mvalid, nvalid, [&]<int MR, int NV, bool FullN>() {
      micro_kernel_tile_strided<MR, NV, FullN>(kc, a, a_step, b, b_step, nvalid, alpha, beta, c, ldc);
    });
  }

 private:
  /// run.template operator()<MR, NV, FullN>() for the micro-tile of exactly [mvalid x nvalid].
  template <class Run>
  static void by_shape(std::int64_t mvalid, std::int64_t nvalid, Run&& run) {
    const auto columns = [&]<int MR>() {
      if (nvalid == 16) return run.template operator()<MR, 2, true>();
      if (nvalid > 8) return run.template operator()<MR, 2, false>();
      if (nvalid == 8) return run.template operator()<MR, 1, true>();
      return run.template operator()<MR, 1, false>();
    };
    switch (mvalid) {
      case 1:
        return columns.template operator()<1>();
      case 2:
        return columns.template operator()<2>();
      case 3:
        return columns.template operator()<3>();
      case 4:
        return columns.template operator()<4>();
      case 5:
        return columns.template operator()<5>();
      default:
        return columns.template operator()<6>();
    }
  }
};

/// Row-major SGEMM, C[m, n] = alpha op(A) op(B) + beta C (m, n, k > 0).
inline void sgemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                  std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  packed_sgemm::sgemm<Kernel>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace progdiff::backend::cpu::avx2
PROGDIFF_KERNELS_END
#endif

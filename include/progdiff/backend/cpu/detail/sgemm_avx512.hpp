#pragma once
// Single-precision GEMM for AVX-512 (Goto/BLIS structure: packed panels, a register-blocked
// micro-kernel, cache blocking). The micro-kernel keeps a 6x64 tile of C in 24 zmm
// accumulators: per k step it loads 4 vectors of B and broadcasts 6 scalars of A for 24
// FMAs, so the two FMA pipes of a Zen 4/5 core stay busy while loads take the other ports.
// Only compiled when the compiler targets AVX-512 (-march=native on such a CPU).
#if defined(__AVX512F__)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "progdiff/backend/backend.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx512 {

inline constexpr std::int64_t kMr = 6;        // rows of C per micro-tile (broadcast side)
inline constexpr std::int64_t kNr = 64;       // columns of C per micro-tile (4 zmm vectors)
inline constexpr std::int64_t kKc = 256;      // k-block: a 256x256 B chunk (256 KiB) stays in L2
inline constexpr std::int64_t kNcPanels = 4;  // B panels per chunk (256 columns)

/// Splits `total` into near-equal blocks of at most `max_block`.
inline std::int64_t even_block(std::int64_t total, std::int64_t max_block) {
  const std::int64_t blocks = (total + max_block - 1) / max_block;
  return (total + blocks - 1) / blocks;
}

/// Where the micro-kernel reads A: element (i, k) of the current tile is a[i * row_stride +
/// k * k_stride]. Packed panels use (1, kMr); a row-major matrix can be read in place with (ld, 1).
struct AView {
  const float* a;
  std::int64_t row_stride, k_stride;
};

/// C tile [MR x nvalid] = alpha * A[MR x kc] * B[kc x nvalid] + beta * C, with NV = the
/// 16-float vectors that nvalid needs: a partial tile computes only its live rows and vectors
/// (a 32-channel layer fills half of a 64-wide tile, its last 6-row panel has 2 rows). B rows
/// are read at stride b_k_stride, masked past nvalid unless FullN (nvalid == 16 NV). beta == 0
/// never reads C, so C may hold garbage. The sum over k runs in the same order whatever the
/// tile, so results do not depend on MR or NV. A's view comes as three scalars, not as an AView:
/// that 24-byte struct is passed on the stack, and the caller filled it with two 8-byte stores
/// that its 16-byte reload for the call could not take from the store buffer, a stall on every
/// call (2% of the samples of a DDIM run on the small U-Net, at the Winograd forward's calls).
template <int MR, int NV, bool FullN>
[[gnu::noinline]] void micro_kernel_tile(std::int64_t kc, const float* a, std::int64_t a_row_stride,
                                         std::int64_t a_k_stride, const float* b, std::int64_t b_k_stride,
                                         std::int64_t nvalid, float alpha, float beta, float* c, std::int64_t ldc) {
  static_assert(MR >= 1 && MR <= kMr && NV >= 1 && NV <= 4, "a micro-tile is at most 6 rows by 4 vectors");
  __m512 acc[MR][NV];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();

  const float* ap[MR];
  for (int i = 0; i < MR; ++i) ap[i] = a + i * a_row_stride;
  const std::int64_t ks = a_k_stride;

  __mmask16 mask[NV];
  for (int j = 0; j < NV; ++j) {
    const std::int64_t left = std::clamp<std::int64_t>(nvalid - 16 * j, 0, 16);
    mask[j] = static_cast<__mmask16>((1u << left) - 1u);
  }

  std::int64_t off = 0;
  for (std::int64_t k = 0; k < kc; ++k, b += b_k_stride, off += ks) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      bv[j] = FullN ? _mm512_loadu_ps(b + 16 * j) : _mm512_maskz_loadu_ps(mask[j], b + 16 * j);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(ap[i][off]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(ai, bv[j], acc[i][j]);
    }
  }

  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      __m512 r = _mm512_mul_ps(va, acc[i][j]);
      if (beta != 0.0f) {
        const __m512 old = FullN ? _mm512_loadu_ps(ci + 16 * j) : _mm512_maskz_loadu_ps(mask[j], ci + 16 * j);
        r = _mm512_fmadd_ps(vb, old, r);
      }
      if (FullN)
        _mm512_storeu_ps(ci + 16 * j, r);
      else
        _mm512_mask_storeu_ps(ci + 16 * j, mask[j], r);
    }
  }
}

/// Calls f.template operator()<MR>() with MR = rows (1..kMr): a run-time row count becomes the
/// tile height of a micro-kernel template.
template <class F>
inline void with_tile_rows(std::int64_t rows, F&& f) {
  switch (rows) {
    case 1:
      return f.template operator()<1>();
    case 2:
      return f.template operator()<2>();
    case 3:
      return f.template operator()<3>();
    case 4:
      return f.template operator()<4>();
    case 5:
      return f.template operator()<5>();
    default:
      return f.template operator()<6>();
  }
}

/// Calls f.template operator()<NV, Full>() for `columns` (1..kNr): NV 16-float vectors cover
/// them, Full when they fill all NV (no masks needed).
template <class F>
inline void with_tile_vectors(std::int64_t columns, F&& f) {
  const std::int64_t vectors = (columns + 15) / 16;
  const bool full = columns == 16 * vectors;
  auto call = [&]<int NV>() { return full ? f.template operator()<NV, true>() : f.template operator()<NV, false>(); };
  switch (vectors) {
    case 1:
      return call.template operator()<1>();
    case 2:
      return call.template operator()<2>();
    case 3:
      return call.template operator()<3>();
    default:
      return call.template operator()<4>();
  }
}

/// C tile [mvalid x nvalid] = alpha * A[mvalid x kc] * B[kc x nvalid] + beta * C (mvalid
/// 1..kMr, nvalid 1..kNr): the micro_kernel_tile that covers exactly the live rows and vectors.
inline void micro_kernel(std::int64_t kc, AView av, std::int64_t mvalid, const float* b, std::int64_t b_k_stride,
                         std::int64_t nvalid, float alpha, float beta, float* c, std::int64_t ldc) {
  with_tile_rows(mvalid, [&]<int MR>() {
    with_tile_vectors(nvalid, [&]<int NV, bool Full>() {
      micro_kernel_tile<MR, NV, Full>(kc, av.a, av.row_stride, av.k_stride, b, b_k_stride, nvalid, alpha, beta, c, ldc);
    });
  });
}

/// op(A)[m, k] -> panels [ceil(m/kMr)][k][kMr], rows past m zero.
inline void pack_a(Trans ta, std::int64_t m, std::int64_t k, const float* a, std::int64_t lda, float* packed,
                   std::int64_t panel_begin, std::int64_t panel_end) {
  for (std::int64_t p = panel_begin; p < panel_end; ++p) {
    float* dst = packed + p * k * kMr;
    const std::int64_t i0 = p * kMr, rows = std::min(kMr, m - i0);
    if (ta == Trans::No) {
      for (std::int64_t kk = 0; kk < k; ++kk)
        for (std::int64_t i = 0; i < kMr; ++i) dst[kk * kMr + i] = i < rows ? a[(i0 + i) * lda + kk] : 0.0f;
    } else {
      for (std::int64_t kk = 0; kk < k; ++kk)
        for (std::int64_t i = 0; i < kMr; ++i) dst[kk * kMr + i] = i < rows ? a[kk * lda + i0 + i] : 0.0f;
    }
  }
}

/// op(B)[k, n] -> panels [ceil(n/kNr)][k][kNr], columns past n zero.
inline void pack_b(Trans tb, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb, float* packed,
                   std::int64_t panel_begin, std::int64_t panel_end) {
  for (std::int64_t p = panel_begin; p < panel_end; ++p) {
    float* dst = packed + p * k * kNr;
    const std::int64_t j0 = p * kNr, cols = std::min(kNr, n - j0);
    if (tb == Trans::No) {
      for (std::int64_t kk = 0; kk < k; ++kk) {
        const float* src = b + kk * ldb + j0;
        float* out = dst + kk * kNr;
        for (std::int64_t j = 0; j < cols; ++j) out[j] = src[j];
        for (std::int64_t j = cols; j < kNr; ++j) out[j] = 0.0f;
      }
    } else {
      for (std::int64_t kk = 0; kk < k; ++kk) {
        float* out = dst + kk * kNr;
        for (std::int64_t j = 0; j < cols; ++j) out[j] = b[(j0 + j) * ldb + kk];
        for (std::int64_t j = cols; j < kNr; ++j) out[j] = 0.0f;
      }
    }
  }
}

/// Grow-only scratch owned by the calling thread (kept across calls: no page faults per step).
inline float* thread_scratch(std::vector<float>& buffer, std::size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

/// C = alpha * (packed A) * (packed B) + beta * C for the tiles [mp_begin, mp_end) x
/// [np_begin, np_end), blocked over k so a B chunk stays in L2 while every A panel runs over it.
inline void packed_tiles(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* pa, const float* pb,
                         float beta, float* c, std::int64_t ldc, std::int64_t mp_begin, std::int64_t mp_end,
                         std::int64_t np_begin, std::int64_t np_end) {
  const std::int64_t kc_max = even_block(k, kKc);
  for (std::int64_t k0 = 0; k0 < k; k0 += kc_max) {
    const std::int64_t kc = std::min(kc_max, k - k0);
    const float b0 = k0 == 0 ? beta : 1.0f;
    for (std::int64_t mp = mp_begin; mp < mp_end; ++mp) {
      const AView av{pa + mp * k * kMr + k0 * kMr, 1, kMr};
      const std::int64_t mvalid = std::min(kMr, m - mp * kMr);
      for (std::int64_t np = np_begin; np < np_end; ++np)
        micro_kernel(kc, av, mvalid, pb + np * k * kNr + k0 * kNr, kNr, std::min(kNr, n - np * kNr), alpha, b0,
                     c + mp * kMr * ldc + np * kNr, ldc);
    }
  }
}

/// Row-major SGEMM, C[m, n] = alpha op(A) op(B) + beta C, threaded with one OpenMP region
/// (single-threaded when called from inside a parallel region).
inline void sgemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                  std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  const std::int64_t mpanels = (m + kMr - 1) / kMr, npanels = (n + kNr - 1) / kNr;
  thread_local std::vector<float> a_buffer, b_buffer;
  float* pa = thread_scratch(a_buffer, static_cast<std::size_t>(mpanels * k * kMr));
  float* pb = thread_scratch(b_buffer, static_cast<std::size_t>(npanels * k * kNr));
  // Jobs: (block of A panels) x (chunk of B panels); enough of them to balance two or more threads.
  const std::int64_t nchunks = (npanels + kNcPanels - 1) / kNcPanels;
  const std::int64_t mblock = std::max<std::int64_t>(1, std::min<std::int64_t>(16, mpanels / 2));
  const std::int64_t mblocks = (mpanels + mblock - 1) / mblock;
  const std::int64_t jobs = nchunks * mblocks;
  // Below ~0.1 ms of work a fork/join costs more than it saves (and far more on a loaded machine).
  const double flops = 2.0 * double(m) * double(n) * double(k);
#pragma omp parallel if (flops > 3e7 && !omp_in_parallel())
  {
#pragma omp for schedule(static) nowait
    for (std::int64_t p = 0; p < mpanels; ++p) pack_a(ta, m, k, a, lda, pa, p, p + 1);
#pragma omp for schedule(static)
    for (std::int64_t p = 0; p < npanels; ++p) pack_b(tb, k, n, b, ldb, pb, p, p + 1);
#pragma omp for schedule(static)
    for (std::int64_t job = 0; job < jobs; ++job) {
      const std::int64_t nc = job % nchunks, mb = job / nchunks;
      packed_tiles(m, n, k, alpha, pa, pb, beta, c, ldc, mb * mblock, std::min(mpanels, (mb + 1) * mblock),
                   nc * kNcPanels, std::min(npanels, (nc + 1) * kNcPanels));
    }
  }
}

}  // namespace progdiff::backend::cpu::avx512
PROGDIFF_KERNELS_END
#endif

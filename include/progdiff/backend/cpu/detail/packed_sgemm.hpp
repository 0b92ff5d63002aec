#pragma once
// The instruction-set-independent half of a Goto/BLIS single-precision GEMM: A packed into
// panels of Kernel::kMr rows, B into panels of Kernel::kNr columns, blocked over k so that a
// chunk of B stays in L2 while every A panel runs over it, threaded with one OpenMP region.
// A Kernel supplies the register-blocked micro-kernel for one instruction set
// (detail/sgemm_avx2.hpp); the AVX-512 GEMM (detail/sgemm_avx512.hpp) has the same structure
// with its own copy of this driver, which its conv kernels share.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "progdiff/backend/backend.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::packed_sgemm {

/// Splits `total` into near-equal blocks of at most `max_block`.
inline std::int64_t even_block(std::int64_t total, std::int64_t max_block) {
  const std::int64_t blocks = (total + max_block - 1) / max_block;
  return (total + blocks - 1) / blocks;
}

/// op(A)[m, k] -> panels [ceil(m/Mr)][k][Mr], rows past m zero.
template <std::int64_t Mr>
void pack_a(Trans ta, std::int64_t m, std::int64_t k, const float* a, std::int64_t lda, float* packed,
            std::int64_t panel_begin, std::int64_t panel_end) {
  for (std::int64_t p = panel_begin; p < panel_end; ++p) {
    float* dst = packed + p * k * Mr;
    const std::int64_t i0 = p * Mr, rows = std::min(Mr, m - i0);
    for (std::int64_t kk = 0; kk < k; ++kk)
      for (std::int64_t i = 0; i < Mr; ++i)
        dst[kk * Mr + i] = i >= rows ? 0.0f : ta == Trans::No ? a[(i0 + i) * lda + kk] : a[kk * lda + i0 + i];
  }
}

/// op(B)[k, n] -> panels of [k][Nr], panel p at packed + p * panel_stride, columns past n zero.
/// (A panel stride above k Nr leaves room for more rows after each panel's k: a caller packing
/// several operands' rows one after the other into the same panels.) Transposed, B's rows are
/// read 16 floats (a cache line) at a time, one row after the other: reading all Nr rows at each
/// k instead would keep Nr lines live at once, and rows a multiple of 4 KiB apart (a 32x32 image's
/// pixels) share one L1 set, so each line would be fetched again for every k.
template <std::int64_t Nr>
void pack_b(Trans tb, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb, float* packed,
            std::int64_t panel_begin, std::int64_t panel_end, std::int64_t panel_stride) {
  constexpr std::int64_t kBlock = 16;
  for (std::int64_t p = panel_begin; p < panel_end; ++p) {
    float* dst = packed + p * panel_stride;
    const std::int64_t j0 = p * Nr, cols = std::min(Nr, n - j0);
    if (tb == Trans::No) {
      for (std::int64_t kk = 0; kk < k; ++kk) {
        float* out = dst + kk * Nr;
        for (std::int64_t j = 0; j < cols; ++j) out[j] = b[kk * ldb + j0 + j];
        for (std::int64_t j = cols; j < Nr; ++j) out[j] = 0.0f;
      }
      continue;
    }
    for (std::int64_t k0 = 0; k0 < k; k0 += kBlock) {
      const std::int64_t kb = std::min(kBlock, k - k0);
      float* out = dst + k0 * Nr;
      for (std::int64_t j = 0; j < cols; ++j) {
        const float* row = b + (j0 + j) * ldb + k0;
        for (std::int64_t kk = 0; kk < kb; ++kk) out[kk * Nr + j] = row[kk];
      }
      for (std::int64_t kk = 0; kk < kb; ++kk)
        for (std::int64_t j = cols; j < Nr; ++j) out[kk * Nr + j] = 0.0f;
    }
  }
}

/// op(B)[k, n] -> panels [ceil(n/Nr)][k][Nr], columns past n zero.
template <std::int64_t Nr>
void pack_b(Trans tb, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb, float* packed,
            std::int64_t panel_begin, std::int64_t panel_end) {
  pack_b<Nr>(tb, k, n, b, ldb, packed, panel_begin, panel_end, k * Nr);
}

/// Grow-only scratch owned by the calling thread (kept across calls: no page faults per step).
inline float* thread_scratch(std::vector<float>& buffer, std::size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

/// Row-major SGEMM, C[m, n] = alpha op(A) op(B) + beta C (m, n, k > 0), on Kernel's
/// micro-kernel: Kernel::tile(kc, packed A panel, mvalid, packed B panel, nvalid, alpha, beta,
/// c, ldc) computes one [mvalid x nvalid] tile from panels with k strides kMr and kNr, and
/// never reads C where beta == 0. Threaded with one OpenMP region (single-threaded inside one).
template <class Kernel>
void sgemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
           std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  constexpr std::int64_t Mr = Kernel::kMr, Nr = Kernel::kNr;
  static_assert(Mr > 0 && Nr > 0 && Kernel::kKc > 0 && Kernel::kNcPanels > 0, "a GEMM kernel needs positive blocks");
  const std::int64_t mpanels = (m + Mr - 1) / Mr, npanels = (n + Nr - 1) / Nr;
  thread_local std::vector<float> a_buffer, b_buffer;
  float* pa = thread_scratch(a_buffer, static_cast<std::size_t>(mpanels * k * Mr));
  float* pb = thread_scratch(b_buffer, static_cast<std::size_t>(npanels * k * Nr));
  // Jobs: (block of A panels) x (chunk of B panels); enough of them to balance two or more threads.
  const std::int64_t nchunks = (npanels + Kernel::kNcPanels - 1) / Kernel::kNcPanels;
  const std::int64_t mblock = std::max<std::int64_t>(1, std::min<std::int64_t>(16, mpanels / 2));
  const std::int64_t mblocks = (mpanels + mblock - 1) / mblock;
  const std::int64_t jobs = nchunks * mblocks;
  const std::int64_t kc_max = even_block(k, Kernel::kKc);
  // Below ~0.1 ms of work a fork/join costs more than it saves (and far more on a loaded machine).
  const double flops = 2.0 * double(m) * double(n) * double(k);
#pragma omp parallel if (flops > 3e7 && !omp_in_parallel())
  {
#pragma omp for schedule(static) nowait
    for (std::int64_t p = 0; p < mpanels; ++p) pack_a<Mr>(ta, m, k, a, lda, pa, p, p + 1);
#pragma omp for schedule(static)
    for (std::int64_t p = 0; p < npanels; ++p) pack_b<Nr>(tb, k, n, b, ldb, pb, p, p + 1);
#pragma omp for schedule(static)
    for (std::int64_t job = 0; job < jobs; ++job) {
      const std::int64_t nc = job % nchunks, mb = job / nchunks;
      const std::int64_t mp_end = std::min(mpanels, (mb + 1) * mblock);
      const std::int64_t np_begin = nc * Kernel::kNcPanels, np_end = std::min(npanels, np_begin + Kernel::kNcPanels);
      for (std::int64_t k0 = 0; k0 < k; k0 += kc_max) {
        const std::int64_t kc = std::min(kc_max, k - k0);
        const float b0 = k0 == 0 ? beta : 1.0f;
        for (std::int64_t mp = mb * mblock; mp < mp_end; ++mp)
          for (std::int64_t np = np_begin; np < np_end; ++np)
            Kernel::tile(kc, pa + mp * k * Mr + k0 * Mr, std::min(Mr, m - mp * Mr), pb + np * k * Nr + k0 * Nr,
                         std::min(Nr, n - np * Nr), alpha, b0, c + mp * Mr * ldc + np * Nr, ldc);
      }
    }
  }
}

/// C[m, n] = alpha A B + beta C (m, n, k > 0) with A already packed (pack_a<Kernel::kMr>, all
/// of k) and B made chunk by chunk as the tiles need it: pack_b(k0, kc, panel_begin, panel_end,
/// dst) writes rows [k0, k0 + kc) of the panels of B's columns [panel_begin kNr, panel_end kNr)
/// to dst as [panel][kc][kNr], zeros past n.
/// B is never whole in memory: one chunk (at most kKc rows of kNcPanels panels) at a time, in
/// L2 while every A panel runs over it. Single-threaded (callers thread over independent
/// products: a convolution's samples).
template <class Kernel, class PackB>
void sgemm_streamed_b(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* packed_a,
                      PackB&& pack_b, float beta, float* c, std::int64_t ldc) {
  constexpr std::int64_t Mr = Kernel::kMr, Nr = Kernel::kNr;
  const std::int64_t mpanels = (m + Mr - 1) / Mr, npanels = (n + Nr - 1) / Nr;
  const std::int64_t kc_max = even_block(k, Kernel::kKc);
  thread_local std::vector<float> b_buffer;
  float* pb = thread_scratch(b_buffer, static_cast<std::size_t>(kc_max * Kernel::kNcPanels * Nr));
  for (std::int64_t k0 = 0; k0 < k; k0 += kc_max) {
    const std::int64_t kc = std::min(kc_max, k - k0);
    const float b0 = k0 == 0 ? beta : 1.0f;
    for (std::int64_t np0 = 0; np0 < npanels; np0 += Kernel::kNcPanels) {
      const std::int64_t np1 = std::min(npanels, np0 + Kernel::kNcPanels);
      pack_b(k0, kc, np0, np1, pb);
      for (std::int64_t mp = 0; mp < mpanels; ++mp)
        for (std::int64_t np = np0; np < np1; ++np)
          Kernel::tile(kc, packed_a + mp * k * Mr + k0 * Mr, std::min(Mr, m - mp * Mr), pb + (np - np0) * kc * Nr,
                       std::min(Nr, n - np * Nr), alpha, b0, c + mp * Mr * ldc + np * Nr, ldc);
    }
  }
}

}  // namespace progdiff::backend::cpu::packed_sgemm
PROGDIFF_KERNELS_END

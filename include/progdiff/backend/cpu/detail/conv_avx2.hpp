#pragma once
// The convolution forward for AVX2 targets without AVX-512: an implicit GEMM. The weights
// [c_out, c_in kh kw] are the A operand, packed once per call; the im2col matrix of a sample is
// the B operand, but it is never written out: each panel of 16 output pixels is gathered from the
// input straight into the micro-kernel's packed layout, one L2-sized chunk at a time
// (packed_sgemm::sgemm_streamed_b). Against im2col then GEMM this saves writing, reading and
// packing again a matrix 9 times the input's size for a 3x3 kernel.
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/packed_sgemm.hpp"
#include "progdiff/backend/cpu/detail/sgemm_avx2.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx2 {

/// Rows [k0, k0 + kc) of the im2col matrix of one sample x [c_in, h, w], columns (output pixels)
/// [col0, col0 + kNr), into dst as [kc][kNr]: zeros for padding and for pixels past the output.
inline void pack_im2col_panel(const ConvGeometry& g, const float* x, std::int64_t k0, std::int64_t kc,
                              std::int64_t col0, float* dst) {
  constexpr std::int64_t Nr = Kernel::kNr;
  const std::int64_t ow = g.out_w(), ohw = g.out_hw(), taps = g.kh * g.kw;
  const std::int64_t oy = col0 / ow, ox0 = col0 % ow;
  // At stride 1, when the panel's pixels lie in one output row, each row of B is a shifted span of
  // one input row.
  const bool one_row = g.stride == 1 && ox0 + Nr <= ow;
  for (std::int64_t r = k0; r < k0 + kc; ++r, dst += Nr) {
    const std::int64_t c = r / taps, ki = (r % taps) / g.kw, kj = r % g.kw;
    const float* plane = x + c * g.h * g.w;
    if (one_row) {
      const std::int64_t yi = oy - g.pad + ki, x0 = ox0 - g.pad + kj;
      if (yi < 0 || yi >= g.h) {
        std::fill(dst, dst + Nr, 0.0f);
        continue;
      }
      const std::int64_t lo = std::clamp<std::int64_t>(-x0, 0, Nr), hi = std::clamp<std::int64_t>(g.w - x0, lo, Nr);
      const float* row = plane + yi * g.w + x0;
      std::fill(dst, dst + lo, 0.0f);
      std::copy(row + lo, row + hi, dst + lo);
      std::fill(dst + hi, dst + Nr, 0.0f);
      continue;
    }
    for (std::int64_t j = 0; j < Nr; ++j) {
      const std::int64_t q = col0 + j;
      const std::int64_t yi = q / ow * g.stride - g.pad + ki, xj = q % ow * g.stride - g.pad + kj;
      dst[j] = q < ohw && yi >= 0 && yi < g.h && xj >= 0 && xj < g.w ? plane[yi * g.w + xj] : 0.0f;
    }
  }
}

/// y = conv(x, weight) (assigns), samples in parallel.
inline void conv2d_forward_implicit(const ConvGeometry& g, const float* x, const float* weight, float* y) {
  const std::int64_t m = g.c_out, k = g.patch(), ohw = g.out_hw();
  const std::int64_t mpanels = (m + Kernel::kMr - 1) / Kernel::kMr;
  thread_local std::vector<float> a_buffer;
  float* pa = packed_sgemm::thread_scratch(a_buffer, static_cast<std::size_t>(mpanels * k * Kernel::kMr));
  packed_sgemm::pack_a<Kernel::kMr>(Trans::No, m, k, weight, k, pa, 0, mpanels);
#pragma omp parallel for schedule(static) if (g.n > 1 && !omp_in_parallel())
  for (std::int64_t i = 0; i < g.n; ++i) {
    const float* xi = x + i * g.c_in * g.h * g.w;
    const auto pack = [&](std::int64_t k0, std::int64_t kc, std::int64_t panel, float* dst) {
      pack_im2col_panel(g, xi, k0, kc, panel * Kernel::kNr, dst);
    };
    packed_sgemm::sgemm_streamed_b<Kernel>(m, ohw, k, 1.0f, pa, pack, 0.0f, y + i * m * ohw, ohw);
  }
}

}  // namespace progdiff::backend::cpu::avx2
PROGDIFF_KERNELS_END
#endif

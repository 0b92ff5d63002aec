#pragma once
// Winograd F(2x2, 3x3) weight gradient for AVX2 targets without AVX-512: the AVX-512 kernel's
// scheme (detail/winograd_avx512.hpp) on 8-float vectors. dW = G^T [ sum over output tiles of
// (A dy A^T) . (B^T x B) ] G, so the sum over a batch's pixels becomes 16 GEMMs over its tiles,
// S_e[c_out, c_in] += Z_e^T V_e, with 2.25x fewer multiply-adds than the implicit GEMM of
// detail/conv_avx2.hpp, which multiplies the nine-fold im2col rows.
//
// x and dy are copied once into zero-bordered NHWC images (8x8 register transposes, channels
// padded to a multiple of 8), so a tile's 4x4 input window and 2x2 gradient are plain vector
// loads of 8 channels, and the transformed tiles land channel-minor: V_e[tile][c_in] and
// Z_e[tile][c_out], read in place by the micro-kernel of detail/sgemm_avx2.hpp (Z_e as its
// broadcast operand, 6 output channels, V_e as its 16-channel vectors) with the tile as k.
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/conv_avx2.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/packed_sgemm.hpp"
#include "progdiff/backend/cpu/detail/sgemm_avx2.hpp"
#include "progdiff/backend/cpu/detail/winograd_avx2.hpp"
#include "progdiff/backend/cpu/detail/winograd_f2_transforms.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx2 {

/// Whether the AVX2 Winograd weight gradient takes g: 3x3, stride 1, pad 1, and at least
/// `min_channels` channels on both sides (fewer would fill the 8-lane vectors with padding).
inline bool winograd_backward_weight_applies(const ConvGeometry& g, std::int64_t min_channels) {
  return g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad == 1 && g.c_in >= min_channels && g.c_out >= min_channels;
}

namespace winograd_backward_weight {

inline constexpr std::int64_t kPositions = 16;  // a 4x4 transformed tile
inline constexpr std::int64_t kLanes = 8;

inline std::int64_t round_up8(std::int64_t c) { return (c + kLanes - 1) / kLanes * kLanes; }

/// Row y of sample x [c, h, w] -> out [wp][cp] with the row's pixels from pixel `border` on,
/// zeros around them and in the channels past c (y outside [0, h): all zeros).
inline void padded_nhwc_row(const float* x, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t y,
                            std::int64_t wp, std::int64_t cp, std::int64_t border, float* out) {
  if (y < 0 || y >= h) {
    std::memset(out, 0, sizeof(float) * wp * cp);
    return;
  }
  std::memset(out, 0, sizeof(float) * border * cp);
  std::memset(out + (w + border) * cp, 0, sizeof(float) * (wp - w - border) * cp);
  __m256 rows[kLanes], pixels[kLanes];
  for (std::int64_t x0 = 0; x0 < w; x0 += kLanes) {
    const std::int64_t count = std::min(kLanes, w - x0);
    for (std::int64_t c0 = 0; c0 < cp; c0 += kLanes) {
      for (std::int64_t i = 0; i < kLanes; ++i)
        rows[i] = c0 + i < c ? static_cast<__m256>(portable::load_lanes(x + ((c0 + i) * h + y) * w + x0, count))
                             : _mm256_setzero_ps();
      transpose8x8(rows, pixels);
      for (std::int64_t q = 0; q < count; ++q) _mm256_storeu_ps(out + (x0 + border + q) * cp + c0, pixels[q]);
    }
  }
}

}  // namespace winograd_backward_weight

/// dweight [c_out, c_in, 3, 3] += the weight gradient of a convolution that
/// winograd_backward_weight_applies to. Each thread sums a static share of the tile rows into a
/// private S (so a given thread count gives the same floats on every run); the threads' S are
/// added in double and transformed at the end.
inline void conv2d_winograd_backward_weight(const ConvGeometry& g, const float* x, const float* dy, float* dweight) {
  using namespace winograd_backward_weight;
  using winograd::position_stride;  // the forward's: positions an odd number of cache lines apart
  constexpr std::int64_t Mr = Kernel::kMr, Nr = Kernel::kNr;
  const std::int64_t cip = round_up8(g.c_in), cop = round_up8(g.c_out);
  const std::int64_t tiles_y = (g.h + 1) / 2, tiles_x = (g.w + 1) / 2;
  const std::int64_t hp = 2 * tiles_y + 2, wp = 2 * tiles_x + 2, x_stride = hp * wp * cip;
  const std::int64_t dy_row = 2 * tiles_x * cop, dy_stride = 2 * tiles_y * dy_row;
  // About 64 tiles per chunk: its V and Z (512 bytes per tile and 8 channels over the 16
  // positions) take 256 KiB at 32 channels a side and 512 KiB at 64, about a Zen 3 core's L2
  // (256 tiles, the AVX-512 kernel's chunk, took 0.66-0.81 of the implicit GEMM's time there
  // against 0.61-0.76 at 64, at 32 and 64 channels), and each micro-tile of S is still read and
  // written only once per 64 multiply-add steps.
  const std::int64_t rows_per_chunk = std::max<std::int64_t>(1, 64 / tiles_x);
  const std::int64_t tile_rows = g.n * tiles_y, chunks = (tile_rows + rows_per_chunk - 1) / rows_per_chunk;
  const std::int64_t max_tiles = rows_per_chunk * tiles_x, s_stride = g.c_out * cip;
  const auto v_floats = static_cast<std::size_t>(kPositions * position_stride(max_tiles * cip));
  const auto z_floats = static_cast<std::size_t>(kPositions * position_stride(max_tiles * cop));

  thread_local std::vector<float> x_buffer, dy_buffer;
  float* xp = packed_sgemm::thread_scratch(x_buffer, static_cast<std::size_t>(g.n * x_stride));
  float* dyp = packed_sgemm::thread_scratch(dy_buffer, static_cast<std::size_t>(g.n * dy_stride));
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  std::vector<float*> partial(static_cast<std::size_t>(threads), nullptr);
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static)
    for (std::int64_t s = 0; s < g.n; ++s) {
      const float* xs = x + s * g.c_in * g.h * g.w;
      const float* dys = dy + s * g.c_out * g.h * g.w;
      for (std::int64_t p = 0; p < hp; ++p)
        padded_nhwc_row(xs, g.c_in, g.h, g.w, p - 1, wp, cip, 1, xp + s * x_stride + p * wp * cip);
      for (std::int64_t p = 0; p < 2 * tiles_y; ++p)
        padded_nhwc_row(dys, g.c_out, g.h, g.w, p, 2 * tiles_x, cop, 0, dyp + s * dy_stride + p * dy_row);
    }
    thread_local std::vector<float> sum_buffer, v_buffer, z_buffer;
    float* acc = packed_sgemm::thread_scratch(sum_buffer, static_cast<std::size_t>(kPositions * s_stride));
    float* v = packed_sgemm::thread_scratch(v_buffer, v_floats);
    float* z = packed_sgemm::thread_scratch(z_buffer, z_floats);
    partial[static_cast<std::size_t>(omp_get_thread_num())] = acc;
    std::fill(acc, acc + kPositions * s_stride, 0.0f);
#pragma omp for schedule(static)
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
      const std::int64_t r0 = chunk * rows_per_chunk, rows = std::min(rows_per_chunk, tile_rows - r0);
      const std::int64_t tiles = rows * tiles_x;
      const std::int64_t v_stride = position_stride(tiles * cip), z_stride = position_stride(tiles * cop);
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t s = (r0 + r) / tiles_y, ty = (r0 + r) % tiles_y;
        const float* xrow = xp + s * x_stride + 2 * ty * wp * cip;
        const float* dyrow = dyp + s * dy_stride + 2 * ty * dy_row;
        for (std::int64_t tx = 0; tx < tiles_x; ++tx) {
          const std::int64_t t = r * tiles_x + tx;
          winograd_f2::transform_input_tile<kLanes>(xrow + 2 * tx * cip, wp * cip, cip, v + t * cip, v_stride);
          winograd_f2::transform_gradient_tile<kLanes>(dyrow + 2 * tx * cop, dy_row, cop, z + t * cop, z_stride);
        }
      }
      // S_e[o, i] += sum over the chunk's tiles t of Z_e[t, o] V_e[t, i].
      for (std::int64_t e = 0; e < kPositions; ++e)
        for (std::int64_t o0 = 0; o0 < g.c_out; o0 += Mr)
          for (std::int64_t i0 = 0; i0 < g.c_in; i0 += Nr)
            Kernel::tile_strided(tiles, z + e * z_stride + o0, cop, std::min(Mr, g.c_out - o0), v + e * v_stride + i0,
                                 cip, std::min(Nr, g.c_in - i0), 1.0f, 1.0f, acc + e * s_stride + o0 * cip + i0, cip);
    }
    // (implicit barrier) dweight[o, i] += G^T (the threads' S[., o, i] summed) G, an output
    // channel o at a time, so each S is read along its rows.
    thread_local std::vector<double> row_buffer;
    row_buffer.resize(static_cast<std::size_t>(kPositions * g.c_in));
    double* row = row_buffer.data();
#pragma omp for schedule(static)
    for (std::int64_t o = 0; o < g.c_out; ++o)
      winograd_f2::add_kernel_gradients(partial, s_stride, o, cip, g.c_in, row,
                                        [&](std::int64_t i) { return dweight + (o * g.c_in + i) * 9; });
  }
}

}  // namespace progdiff::backend::cpu::avx2
PROGDIFF_KERNELS_END
#endif

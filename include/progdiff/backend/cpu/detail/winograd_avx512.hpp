#pragma once
// Winograd F(2x2, 3x3) for 3x3, stride-1, pad-1 convolutions in single precision (Lavin and
// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Each 2x2 output tile is
// A^T [ (G g G^T) . (B^T d B) ] A of its 4x4 input tile d: 16 multiplies per tile and channel
// pair instead of 36, so the GEMM work is 2.25x smaller than a direct convolution's. The
// transforms are additions only, with the coefficients of G being 1 and 1/2, so the rounding
// stays close to the direct convolution's.
//
// Channels run along the vector lanes: the rows of x that a tile row reads are copied into
// zero-bordered NHWC rows (16x16 register transposes; the forward keeps four in a ring, the
// weight gradient copies the whole input), so a tile's 16 input positions are 16 plain vector
// loads and the input transform is 64 additions per 16 channels. The 16 element-wise products
// become 16 GEMMs M_e[tiles, c_out] = V_e[tiles, c_in] U_e[c_in, c_out] on the micro-kernel of
// sgemm_avx512.hpp (V broadcast, U read as 64-wide packed panels). Tiles are taken a few tile
// rows at a time so V stays in L2 and each panel's M in L1; the output transform writes 16
// pixels by 16 channels of a tile row into a 2 KiB NHWC block in L1, which register transposes
// turn into the NCHW output. Backward data is the same kernel on dy with the flipped kernels;
// the weight gradient sums (A dy A^T) . V over tiles with 16 more GEMMs and applies G^T . G
// once at the end.
#if defined(__AVX512F__)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/conv_avx512.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/sgemm_avx512.hpp"
#include "progdiff/backend/cpu/detail/winograd_f2_transforms.hpp"
#include "progdiff/backend/cpu/kernel_choices.hpp"
#include "progdiff/core/error.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx512 {

/// Whether the Winograd kernels can take the convolution: 3x3, stride 1, pad 1 ("same"),
/// and at least 16 channels on both sides (a stem convolution from 1 or 3 channels would pad
/// its channels to 16 and lose). The weight gradient takes every such convolution.
inline bool winograd_applies(const ConvGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad == 1 && g.c_in >= 16 && g.c_out >= 16;
}

/// Whether the forward (and the backward data, a forward with the channel roles swapped) is
/// faster through Winograd than through the direct kernel. Where the direct kernel applies
/// (whole 64-pixel panels), its forward wins below some channel count, where the transforms'
/// traffic outweighs the 2.25x fewer multiply-adds; that count depends on the machine
/// and the image size (kernel_choices.hpp: 48 built in, measured per machine by progdiff_calibrate).
inline bool winograd_forward_pays(const ConvGeometry& g) {
  return winograd_applies(g) &&
         (!direct_applies(g) || std::min(g.c_in, g.c_out) >= kernel_choices().winograd_min_channels_for(g.out_hw()));
}

namespace winograd {

inline constexpr std::int64_t kPositions = 16;  // a 4x4 transformed tile

inline std::int64_t round_up16(std::int64_t v) { return (v + 15) / 16 * 16; }

/// Grow-only scratch of the calling thread, one set for every Winograd call (the forward for
/// each kernel-reading function, the backward data and the weight gradient run one after the
/// other, so they share it rather than each keeping its own).
struct Scratch {
  std::vector<float> padded_input, padded_gradient, weights;    // whole-call buffers
  std::vector<float> transformed, products, sums, padded_rows;  // per-thread buffers
};
inline Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

/// Floats of U for a forward of geometry g: [16 positions][c_out panels][c_in padded][kNr].
inline std::size_t transformed_weights_floats(const ConvGeometry& g) {
  const std::int64_t npanels = (g.c_out + kNr - 1) / kNr;
  return static_cast<std::size_t>(kPositions * npanels * round_up16(g.c_in) * kNr);
}

/// Where a forward finds U: in the calling thread's scratch (u null), or in memory the caller
/// keeps across calls (a layer's WinogradWeightCache), which holds the transform of the tap
/// weights already where `current`, and which the forward fills first otherwise.
struct TransformedWeights {
  float* u = nullptr;
  bool current = false;
};

/// Floats between the 16 position planes of a block of `floats_per_position`: one cache line
/// more than needed, so the 16 streams a transform writes (and the output transform reads)
/// never all fall into one L1 set (at 32x32, a plain stride is a multiple of 4 KiB).
inline std::int64_t position_stride(std::int64_t floats_per_position) { return floats_per_position + 16; }

/// U_e = G g G^T for every (c_out, c_in) pair, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
/// stored as the micro-kernel's B operand: [e][c_out panel][c_in_padded][kNr], zero past c_out
/// and c_in. tap(o, i, ki, kj) gives the 3x3 kernel of output o and input i (so the
/// backward-data pass can hand in its flipped, transposed weights without a copy).
template <class Tap>
void transform_weights(std::int64_t c_out, std::int64_t c_in, std::int64_t c_in_padded, Tap tap, float* u) {
  const std::int64_t npanels = (c_out + kNr - 1) / kNr, position_stride = npanels * c_in_padded * kNr;
#pragma omp for schedule(static)
  for (std::int64_t o = 0; o < npanels * kNr; ++o) {
    float* column = u + (o / kNr) * c_in_padded * kNr + o % kNr;
    for (std::int64_t i = 0; i < c_in_padded; ++i) {
      float t[4][4] = {};
      if (o < c_out && i < c_in) {
        float gt[4][3];  // G g, then (G g) G^T
        for (int c = 0; c < 3; ++c) {
          const float g0 = tap(o, i, 0, c), g1 = tap(o, i, 1, c), g2 = tap(o, i, 2, c);
          gt[0][c] = g0;
          gt[1][c] = 0.5f * (g0 + g1 + g2);
          gt[2][c] = 0.5f * (g0 - g1 + g2);
          gt[3][c] = g2;
        }
        for (int r = 0; r < 4; ++r) {
          t[r][0] = gt[r][0];
          t[r][1] = 0.5f * (gt[r][0] + gt[r][1] + gt[r][2]);
          t[r][2] = 0.5f * (gt[r][0] - gt[r][1] + gt[r][2]);
          t[r][3] = gt[r][2];
        }
      }
      for (int e = 0; e < kPositions; ++e) column[e * position_stride + i * kNr] = t[e / 4][e % 4];
    }
  }
}

/// Row y of sample x [c, h, w] -> out [wp][c_padded] with the row at pixel `border` and zeros
/// around it and in the padding channels (y outside [0, h): all zeros).
inline void padded_nhwc_row(const float* x, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t y,
                            std::int64_t wp, std::int64_t c_padded, std::int64_t border, float* out) {
  if (y < 0 || y >= h) {
    std::memset(out, 0, sizeof(float) * wp * c_padded);
    return;
  }
  __m512 r[16];
  std::memset(out, 0, sizeof(float) * border * c_padded);
  std::memset(out + (w + border) * c_padded, 0, sizeof(float) * (wp - w - border) * c_padded);
  for (std::int64_t x0 = 0; x0 < w; x0 += 16) {
    const std::int64_t pixels = std::min<std::int64_t>(16, w - x0);
    const __mmask16 mask = lane_range(0, pixels);
    for (std::int64_t c0 = 0; c0 < c_padded; c0 += 16) {
      for (std::int64_t i = 0; i < 16; ++i)
        r[i] = c0 + i < c ? _mm512_maskz_loadu_ps(mask, x + ((c0 + i) * h + y) * w + x0) : _mm512_setzero_ps();
      transpose16x16(r);
      for (std::int64_t q = 0; q < pixels; ++q) _mm512_storeu_ps(out + (x0 + border + q) * c_padded + c0, r[q]);
    }
  }
}

/// Sample x [c, h, w] -> xp [hp][wp][c_padded] with x at (border, border) and zeros around
/// it and in the padding channels.
inline void to_padded_nhwc(const float* x, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t hp,
                           std::int64_t wp, std::int64_t c_padded, std::int64_t border, float* xp) {
  for (std::int64_t p = 0; p < hp; ++p)
    padded_nhwc_row(x, c, h, w, p - border, wp, c_padded, border, xp + p * wp * c_padded);
}

/// The padded NHWC rows of the input tiles of one tile row, built as the forward needs them:
/// four rows [wp][c_padded] in a ring (padded row p in slot p % 4), so consecutive tile rows of a
/// sample, which share two input rows, transpose each row once, and the rows stay in L1 or L2
/// instead of a whole padded copy of the input going through memory.
struct PaddedRowRing {
  float* slots;
  std::int64_t row_floats, sample = -1, from = 0, to = 0;  // rows [from, to) of `sample` are in place

  /// Makes padded rows [p0, p0 + 4) of sample s (image rows p0 - 1 to p0 + 2) present and
  /// points rows[k] at row p0 + k.
  void prepare(const float* x, std::int64_t s, std::int64_t p0, std::int64_t c, std::int64_t h, std::int64_t w,
               std::int64_t wp, std::int64_t c_padded, const float* rows[4]) {
    for (std::int64_t p = p0; p < p0 + 4; ++p) {
      float* slot = slots + (p % 4) * row_floats;
      if (s != sample || p < from || p >= to) padded_nhwc_row(x + s * c * h * w, c, h, w, p - 1, wp, c_padded, 1, slot);
      rows[p - p0] = slot;
    }
    sample = s;
    from = p0;
    to = p0 + 4;
  }
};

/// The 2x2 output tile A^T M A (+ bias) for 16 channels, A^T = [1 1 1 0; 0 1 -1 -1]: m points
/// at M_0 of the tile, M_e is position_stride floats further. out[r * out_row + c] receives
/// pixel (r, c).
inline void transform_output_tile(const float* m, std::int64_t position_stride, __m512 bias, float* out,
                                  std::int64_t out_row, std::int64_t out_pixel) {
  __m512 s[2][4];
  for (int c = 0; c < 4; ++c) {
    const __m512 m0 = _mm512_loadu_ps(m + c * position_stride), m1 = _mm512_loadu_ps(m + (4 + c) * position_stride);
    const __m512 m2 = _mm512_loadu_ps(m + (8 + c) * position_stride),
                 m3 = _mm512_loadu_ps(m + (12 + c) * position_stride);
    s[0][c] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
    s[1][c] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
  }
  for (int r = 0; r < 2; ++r) {
    const __m512 y0 = _mm512_add_ps(_mm512_add_ps(s[r][0], s[r][1]), s[r][2]);
    const __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(s[r][1], s[r][2]), s[r][3]);
    _mm512_storeu_ps(out + r * out_row, _mm512_add_ps(y0, bias));
    _mm512_storeu_ps(out + r * out_row + out_pixel, _mm512_add_ps(y1, bias));
  }
}

/// Output transform of one tile row, 16 channels: up to 8 tiles side by side (16 output
/// pixels) go through a 2 KiB block in L1, [2 rows][16 pixels][16 channels], which one register
/// transpose per output row turns into 16 pixel vectors per channel, stored into y (one
/// sample's [c_out, h, w]) at rows y0, y0 + 1 (those inside the image) from channel c0; with a
/// residual (laid out as y, nullptr: none) each value stored is the transform + bias +
/// residual. m points at M_0 of the row's first tile and channel, tiles kNr floats apart.
inline void output_tile_row(const float* m, std::int64_t position_stride, std::int64_t tiles_x, __m512 bias, float* y,
                            const float* residual, std::int64_t y0, std::int64_t h, std::int64_t w, std::int64_t c0,
                            std::int64_t live) {
  alignas(64) float block[2][16][16];
  __m512 r[16];
  for (std::int64_t tx0 = 0; tx0 < tiles_x; tx0 += 8) {
    const std::int64_t tiles = std::min<std::int64_t>(8, tiles_x - tx0), x0 = 2 * tx0;
    for (std::int64_t t = 0; t < tiles; ++t)
      transform_output_tile(m + (tx0 + t) * kNr, position_stride, bias, block[0][2 * t], 16 * 16, 16);
    const std::int64_t pixels = std::min<std::int64_t>(16, w - x0);
    const __mmask16 mask = lane_range(0, pixels);
    for (std::int64_t row = 0; row < 2 && y0 + row < h; ++row) {
      for (std::int64_t q = 0; q < 16; ++q) r[q] = q < pixels ? _mm512_load_ps(block[row][q]) : _mm512_setzero_ps();
      transpose16x16(r);
      for (std::int64_t i = 0; i < live; ++i) {
        const std::int64_t at = ((c0 + i) * h + y0 + row) * w + x0;
        const __m512 v = residual ? _mm512_add_ps(r[i], _mm512_maskz_loadu_ps(mask, residual + at)) : r[i];
        _mm512_mask_storeu_ps(y + at, mask, v);
      }
    }
  }
}

}  // namespace winograd

/// y = conv3x3(x, weights) + the epilogue's terms for a geometry winograd_applies to;
/// tap(o, i, ki, kj) is the kernel of output channel o and input channel i (assigns).
/// block_bytes: the L2 share of a block of transformed input (0: kernel_choices()'s); any value
/// gives the same bits, since every tile's sums run over all input channels in one order.
/// weights: where U is (default: transformed into scratch on every call); a U the caller
/// keeps must be the transform of exactly the tap weights where it says `current`.
template <class Tap>
void conv2d_winograd(const ConvGeometry& g, const float* x, Tap tap, const ConvEpilogue<float>& epilogue, float* y,
                     std::int64_t block_bytes = 0, winograd::TransformedWeights weights = {}) {
  using namespace winograd;
  require(winograd_applies(g), "conv2d_winograd: not a 3x3, stride-1, pad-1 convolution of 16 or more channels");
  const std::int64_t cip = round_up16(g.c_in), npanels = (g.c_out + kNr - 1) / kNr;
  const std::int64_t tiles_y = (g.h + 1) / 2, tiles_x = (g.w + 1) / 2;
  const std::int64_t wp = 2 * tiles_x + 2;  // padded row width: a zero column each side, and one more for odd w
  // Tile rows per block: V_e of the block (64 bytes per tile and input channel over all 16 e)
  // within block_bytes, so it stays in L2 while every c_out panel runs over it; the products M_e
  // (4 KiB per tile) bound the block too. At 384 KiB (3/8 of a 1 MiB L2): 6144 / cip, 12 to 96 tiles.
  if (block_bytes <= 0) block_bytes = kernel_choices().winograd_block_bytes;
  const std::int64_t target_tiles =
      std::clamp<std::int64_t>(block_bytes / (64 * cip), 12, std::max<std::int64_t>(12, block_bytes / 4096));
  const std::int64_t rows_per_block = std::max<std::int64_t>(1, target_tiles / tiles_x);
  const std::int64_t tile_rows = g.n * tiles_y, blocks = (tile_rows + rows_per_block - 1) / rows_per_block;
  const std::int64_t max_tiles = rows_per_block * tiles_x;

  float* u = weights.u ? weights.u : thread_scratch(scratch().weights, transformed_weights_floats(g));
  const bool transform = !(weights.u && weights.current);
  const std::int64_t u_position_stride = npanels * cip * kNr;
  thread_local std::vector<float> bias_buffer;
  const SampleBias bias = bias_per_sample(g, epilogue, bias_buffer);

#pragma omp parallel if (!omp_in_parallel())
  {
    if (transform) transform_weights(g.c_out, g.c_in, cip, tap, u);  // (implicit barrier: U is complete)

    Scratch& own = scratch();
    PaddedRowRing ring{thread_scratch(own.padded_rows, static_cast<std::size_t>(4 * wp * cip)), wp * cip};
    float* v = thread_scratch(own.transformed, static_cast<std::size_t>(kPositions * position_stride(max_tiles * cip)));
    float* m = thread_scratch(own.products, static_cast<std::size_t>(kPositions * position_stride(max_tiles * kNr)));
#pragma omp for schedule(dynamic)
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t r0 = b * rows_per_block, rows = std::min(rows_per_block, tile_rows - r0);
      const std::int64_t tiles = rows * tiles_x;
      const std::int64_t v_stride = position_stride(tiles * cip), m_stride = position_stride(tiles * kNr);
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t s = (r0 + r) / tiles_y, ty = (r0 + r) % tiles_y;
        const float* in[4];
        ring.prepare(x, s, 2 * ty, g.c_in, g.h, g.w, wp, cip, in);
        for (std::int64_t tx = 0; tx < tiles_x; ++tx) {
          const float* const tile[4] = {in[0] + 2 * tx * cip, in[1] + 2 * tx * cip, in[2] + 2 * tx * cip,
                                        in[3] + 2 * tx * cip};
          winograd_f2::transform_input_tile<16>(tile, cip, v + (r * tiles_x + tx) * cip, v_stride);
        }
      }
      for (std::int64_t np = 0; np < npanels; ++np) {
        const std::int64_t c0 = np * kNr, channels = std::min(kNr, g.c_out - c0);
        for (std::int64_t e = 0; e < kPositions; ++e) {
          const float* ue = u + e * u_position_stride + np * cip * kNr;
          for (std::int64_t t0 = 0; t0 < tiles; t0 += kMr)
            micro_kernel(cip, AView{v + e * v_stride + t0 * cip, cip, 1}, std::min(kMr, tiles - t0), ue, kNr, channels,
                         1.0f, 0.0f, m + e * m_stride + t0 * kNr, kNr);
        }
        for (std::int64_t r = 0; r < rows; ++r) {
          // A block's tile rows may span samples: the bias is per tile row.
          const std::int64_t s = (r0 + r) / tiles_y, ty = (r0 + r) % tiles_y;
          const std::int64_t sample_offset = s * g.c_out * g.h * g.w;
          const float* residual = epilogue.residual ? epilogue.residual + sample_offset : nullptr;
          for (std::int64_t cv = 0; cv < channels; cv += 16) {
            const float* row_bias = bias.of(s, c0 + cv);
            const __m512 bias_v =
                row_bias ? _mm512_maskz_loadu_ps(lane_range(0, channels - cv), row_bias) : _mm512_setzero_ps();
            output_tile_row(m + r * tiles_x * kNr + cv, m_stride, tiles_x, bias_v, y + sample_offset, residual, 2 * ty,
                            g.h, g.w, c0 + cv, std::min<std::int64_t>(16, channels - cv));
          }
        }
      }
    }
  }
}

/// The same with only a bias [c_out] (nullptr: none).
template <class Tap>
void conv2d_winograd(const ConvGeometry& g, const float* x, Tap tap, const float* bias, float* y,
                     std::int64_t block_bytes = 0) {
  conv2d_winograd(g, x, tap, ConvEpilogue<float>{bias}, y, block_bytes);
}

/// dweight [c_out, c_in, 3, 3] += the weight gradient of a convolution winograd_applies to:
/// dW = G^T [ sum over tiles of (A dy A^T) . (B^T x B) ] G, so the sum over tiles is 16 GEMMs
/// S_e[c_in, c_out] += V_e^T Z_e, 2.25x fewer multiply-adds than the direct sum over pixels.
/// Each thread sums its tile rows into a private S (static schedule: with a given thread count
/// the float result is reproducible); the threads' S are added and transformed at the end.
inline void conv2d_winograd_backward_weight(const ConvGeometry& g, const float* x, const float* dy, float* dweight) {
  using namespace winograd;
  require(winograd_applies(g),
          "conv2d_winograd_backward_weight: not a 3x3, stride-1, pad-1 convolution of 16 or more channels");
  const std::int64_t cip = round_up16(g.c_in), cop = round_up16(g.c_out);
  const std::int64_t tiles_y = (g.h + 1) / 2, tiles_x = (g.w + 1) / 2;
  const std::int64_t hp = 2 * tiles_y + 2, wp = 2 * tiles_x + 2, x_stride = hp * wp * cip;
  const std::int64_t dy_stride = 4 * tiles_y * tiles_x * cop;
  // About 256 tiles per chunk: each S_e tile of the micro-kernel is loaded and stored once per
  // 256 multiply-add steps, and V_e, Z_e of a chunk (1 KiB per tile and 16 channels) stay in L2.
  const std::int64_t rows_per_chunk = std::max<std::int64_t>(1, 256 / tiles_x);
  const std::int64_t tile_rows = g.n * tiles_y, chunks = (tile_rows + rows_per_chunk - 1) / rows_per_chunk;
  const std::int64_t max_tiles = rows_per_chunk * tiles_x, s_stride = cip * cop;

  float* xp = thread_scratch(scratch().padded_input, static_cast<std::size_t>(g.n * x_stride));
  float* dyp = thread_scratch(scratch().padded_gradient, static_cast<std::size_t>(g.n * dy_stride));
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  std::vector<float*> partial(static_cast<std::size_t>(threads), nullptr);
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static)
    for (std::int64_t s = 0; s < g.n; ++s) {
      to_padded_nhwc(x + s * g.c_in * g.h * g.w, g.c_in, g.h, g.w, hp, wp, cip, 1, xp + s * x_stride);
      to_padded_nhwc(dy + s * g.c_out * g.h * g.w, g.c_out, g.h, g.w, 2 * tiles_y, 2 * tiles_x, cop, 0,
                     dyp + s * dy_stride);
    }
    Scratch& own = scratch();
    float* acc = thread_scratch(own.sums, static_cast<std::size_t>(kPositions * s_stride));
    float* v = thread_scratch(own.transformed, static_cast<std::size_t>(kPositions * position_stride(max_tiles * cip)));
    float* z = thread_scratch(own.products, static_cast<std::size_t>(kPositions * position_stride(max_tiles * cop)));
    partial[static_cast<std::size_t>(omp_get_thread_num())] = acc;
    std::memset(acc, 0, sizeof(float) * kPositions * s_stride);
#pragma omp for schedule(static)
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
      const std::int64_t r0 = chunk * rows_per_chunk, rows = std::min(rows_per_chunk, tile_rows - r0);
      const std::int64_t tiles = rows * tiles_x, v_stride = position_stride(tiles * cip),
                         z_stride = position_stride(tiles * cop);
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t s = (r0 + r) / tiles_y, ty = (r0 + r) % tiles_y;
        const float* xrow = xp + s * x_stride + 2 * ty * wp * cip;
        const float* dyrow = dyp + s * dy_stride + 2 * ty * 2 * tiles_x * cop;
        for (std::int64_t tx = 0; tx < tiles_x; ++tx) {
          const std::int64_t t = r * tiles_x + tx;
          winograd_f2::transform_input_tile<16>(xrow + 2 * tx * cip, wp * cip, cip, v + t * cip, v_stride);
          winograd_f2::transform_gradient_tile<16>(dyrow + 2 * tx * cop, 2 * tiles_x * cop, cop, z + t * cop, z_stride);
        }
      }
      for (std::int64_t e = 0; e < kPositions; ++e)
        for (std::int64_t c0 = 0; c0 < g.c_in; c0 += kMr)
          for (std::int64_t o0 = 0; o0 < g.c_out; o0 += kNr)
            micro_kernel(tiles, AView{v + e * v_stride + c0, 1, cip}, std::min(kMr, g.c_in - c0), z + e * z_stride + o0,
                         cop, std::min(kNr, g.c_out - o0), 1.0f, 1.0f, acc + e * s_stride + c0 * cop + o0, cop);
    }
    // (implicit barrier) dweight[o, i] += G^T (sum over threads of S[., i, o]) G, one input
    // channel i at a time so S is read along its rows.
    thread_local std::vector<double> row_buffer;
    row_buffer.resize(static_cast<std::size_t>(kPositions * g.c_out));
    double* row = row_buffer.data();
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < g.c_in; ++i)
      winograd_f2::add_kernel_gradients(partial, s_stride, i, cop, g.c_out, row,
                                        [&](std::int64_t o) { return dweight + (o * g.c_in + i) * 9; });
  }
}

}  // namespace progdiff::backend::cpu::avx512
PROGDIFF_KERNELS_END
#endif

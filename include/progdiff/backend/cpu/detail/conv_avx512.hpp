#pragma once
// Single-precision 2-D convolution on the AVX-512 micro-kernel of sgemm_avx512.hpp, as
// implicit GEMMs whose im2col operand is built block by block straight into the packed
// layout the kernel reads, so it never leaves L2:
//   forward          y_n[c_out, hw]   = W[c_out, c_in*k*k] * col(x_n)[c_in*k*k, hw]; with stride 1
//                    and "same" padding the micro-kernel reads col(x_n) straight from x (each
//                    tap is x shifted by a fixed offset, padding lanes masked off): no im2col
//   backward data    stride 1: a forward convolution of dy with the flipped, transposed
//                    weights and padding k-1-p (no col2im); other strides go the generic way
//   backward weight  dW^T[c_in*k*k, c_out] += col(x_n)[c_in*k*k, hw] * dy_n^T[hw, c_out]; with
//                    stride 1 and "same" padding the rows of col(x_n) are read from a padded
//                    copy of x (each tap a shifted view of its channel's plane): no im2col
// One OpenMP region per call; the weights are packed once per call and shared by all threads.
#if defined(__AVX512F__)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "progdiff/backend/conv_epilogue.hpp"
#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/flipped_kernels.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/padded_sample.hpp"
#include "progdiff/backend/cpu/detail/sgemm_avx512.hpp"
#include "progdiff/backend/cpu/detail/thread_partial_sums.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx512 {

/// Lanes [lo, hi) of a 16-lane mask (empty when hi <= lo).
inline __mmask16 lane_range(std::int64_t lo, std::int64_t hi) {
  lo = std::clamp<std::int64_t>(lo, 0, 16);
  hi = std::clamp<std::int64_t>(hi, 0, 16);
  return hi <= lo ? __mmask16(0) : static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/// Where im2col row rr, pixel j (counted from the block's first pixel) goes: pixels are cut
/// into kNr-wide panels `panel_stride` floats apart, rows are `ld` apart inside a panel.
/// panel_stride == kNr is a plain row-major [rows][ld] matrix; panel_stride == rows * kNr
/// is the packed B layout of the micro-kernel, one [rows][kNr] panel after the other.
static_assert(kNr == 64, "Im2colTarget::at assumes 64-pixel panels");
struct Im2colTarget {
  float* dst;
  std::int64_t ld, panel_stride;
  // j >= 0 and kNr = 64: shifts, not a signed division.
  float* at(std::int64_t rr, std::int64_t j) const { return dst + rr * ld + (j >> 6) * panel_stride + (j & 63); }
};

/// Whether im2col_whole_rows handles the pixels [j0, j0+cols) of a sample: stride 1 or 2,
/// whole output rows of at most 128 pixels, and no 16-pixel vector of a row split between
/// two panels (rows a multiple of 16 wide, or a divisor of kNr, or one row-major matrix).
inline bool whole_rows_apply(const ConvGeometry& g, std::int64_t j0, std::int64_t cols, const Im2colTarget& t) {
  const std::int64_t ow = g.out_w();
  return (g.stride == 1 || g.stride == 2) && ow <= 128 && j0 % ow == 0 && cols % ow == 0 &&
         (t.panel_stride == kNr || ow % 16 == 0 || kNr % ow == 0);
}

/// im2col for stride 1 where the output rows are as wide as the input rows and 16 / ow of
/// them fill one vector (8x8 images: two rows): the input those rows read is contiguous
/// per tap, so each vector is one load whose mask drops the lanes that fall into the
/// horizontal or vertical padding, and one full store.
inline void im2col_narrow_rows(const ConvGeometry& g, const float* x, std::int64_t r0, std::int64_t rows,
                               std::int64_t j0, std::int64_t cols, const Im2colTarget& t) {
  const std::int64_t ow = g.w, taps = g.kh * g.kw;
  __mmask16 column_mask[16];  // lanes whose input column is inside the image, per tap column
  for (std::int64_t kj = 0; kj < g.kw; ++kj) {
    column_mask[kj] = 0;
    for (std::int64_t lane = 0; lane < 16; ++lane) {
      const std::int64_t xi = lane % ow + kj - g.pad;
      if (xi >= 0 && xi < g.w) column_mask[kj] |= static_cast<__mmask16>(1u << lane);
    }
  }
  for (std::int64_t rr = 0; rr < rows; ++rr) {
    const std::int64_t r = r0 + rr, c = r / taps, ki = (r / g.kw) % g.kh, kj = r % g.kw;
    const float* xc = x + c * g.h * g.w + (kj - g.pad);
    for (std::int64_t j = 0; j < cols; j += 16) {
      const std::int64_t yi = (j0 + j) / ow - g.pad + ki;  // input row of the vector's first lane
      const __mmask16 mask = column_mask[kj] & lane_range(-yi * ow, (g.h - yi) * ow);
      _mm512_storeu_ps(t.at(rr, j), _mm512_maskz_loadu_ps(mask, xc + yi * ow));
    }
  }
}

/// im2col of whole output rows (every U-Net block): per im2col row the padding masks depend
/// only on the tap column, so they are set up once per row of the block, and each vector of
/// an output row is one masked load (stride 2: two, and a permute keeping the even lanes)
/// and one store. The block spans all panels of a chunk, so the set-up is paid once per
/// row and chunk, not once per row and panel.
inline void im2col_whole_rows(const ConvGeometry& g, const float* x, std::int64_t r0, std::int64_t rows,
                              std::int64_t j0, std::int64_t cols, const Im2colTarget& t) {
  const std::int64_t ow = g.out_w(), taps = g.kh * g.kw, oy0 = j0 / ow, out_rows = cols / ow, s = g.stride;
  if (s == 1 && ow < 16 && 16 % ow == 0 && g.w == ow && j0 % 16 == 0 && cols % 16 == 0 && g.kw <= 16)
    return im2col_narrow_rows(g, x, r0, rows, j0, cols, t);
  const std::int64_t vectors = (ow + 15) / 16;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __mmask16 store_mask[8], load_lo[8], load_hi[8];
  for (std::int64_t v = 0; v < vectors; ++v) store_mask[v] = lane_range(0, ow - 16 * v);
  for (std::int64_t rr = 0; rr < rows; ++rr) {
    const std::int64_t r = r0 + rr, c = r / taps, ki = (r / g.kw) % g.kh, kj = r % g.kw;
    const std::int64_t x0 = kj - g.pad;  // input column of output column 0
    for (std::int64_t v = 0; v < vectors; ++v) {
      // Input columns x0 + s * (16 v + lane) for stride 1; x0 + 32 v + lane (+16) for stride 2.
      const std::int64_t base = x0 + 16 * s * v;
      load_lo[v] = lane_range(-base, g.w - base);
      load_hi[v] = lane_range(-(base + 16), g.w - (base + 16));
      if (s == 1) load_lo[v] &= store_mask[v];
    }
    const float* xc = x + c * g.h * g.w;
    for (std::int64_t oy = 0; oy < out_rows; ++oy) {
      const std::int64_t yi = (oy0 + oy) * s - g.pad + ki;
      if (yi < 0 || yi >= g.h) {
        for (std::int64_t v = 0; v < vectors; ++v)
          _mm512_mask_storeu_ps(t.at(rr, oy * ow + 16 * v), store_mask[v], _mm512_setzero_ps());
        continue;
      }
      // Masked-off lanes are neither read nor able to fault, also left of the row start.
      const float* row = xc + yi * g.w + x0;
      for (std::int64_t v = 0; v < vectors; ++v) {
        __m512 value;
        if (s == 1) {
          // Full masks take the plain load (cheaper than a masked one on some cores).
          value =
              load_lo[v] == 0xFFFF ? _mm512_loadu_ps(row + 16 * v) : _mm512_maskz_loadu_ps(load_lo[v], row + 16 * v);
        } else {
          const __m512 lo = _mm512_maskz_loadu_ps(load_lo[v], row + 32 * v);
          const __m512 hi = _mm512_maskz_loadu_ps(load_hi[v], row + 32 * v + 16);
          value = _mm512_permutex2var_ps(lo, even, hi);
        }
        float* o = t.at(rr, oy * ow + 16 * v);
        if (store_mask[v] == 0xFFFF)
          _mm512_storeu_ps(o, value);
        else
          _mm512_mask_storeu_ps(o, store_mask[v], value);
      }
    }
  }
}

/// Rows [r0, r0+rows) and output pixels [j0, j0+cols) of the im2col matrix of one sample
/// x: [c_in, h, w], the generic way (any stride and row width), into a row-major dst[(r-r0)
/// * ld + (j-j0)]; columns cols..width are zero.
inline void im2col_block(const ConvGeometry& g, const float* x, std::int64_t r0, std::int64_t rows, std::int64_t j0,
                         std::int64_t cols, float* dst, std::int64_t ld, std::int64_t width) {
  const std::int64_t ow = g.out_w(), taps = g.kh * g.kw;
  for (std::int64_t rr = 0; rr < rows; ++rr) {
    const std::int64_t r = r0 + rr, c = r / taps, ki = (r / g.kw) % g.kh, kj = r % g.kw;
    const float* xc = x + c * g.h * g.w;
    float* out = dst + rr * ld;
    for (std::int64_t j = j0; j < j0 + cols;) {
      const std::int64_t oy = j / ow, ox = j % ow, run = std::min(ow - ox, j0 + cols - j);
      const std::int64_t yi = oy * g.stride - g.pad + ki;
      float* o = out + (j - j0);
      if (yi < 0 || yi >= g.h) {
        std::memset(o, 0, sizeof(float) * run);
      } else if (g.stride == 1) {
        const float* row = xc + yi * g.w;
        const std::int64_t x0 = ox - g.pad + kj;  // input column of o[0]
        const std::int64_t lo = std::clamp<std::int64_t>(-x0, 0, run), hi = std::clamp<std::int64_t>(g.w - x0, lo, run);
        for (std::int64_t t = 0; t < lo; ++t) o[t] = 0.0f;
        std::memcpy(o + lo, row + x0 + lo, sizeof(float) * (hi - lo));
        for (std::int64_t t = hi; t < run; ++t) o[t] = 0.0f;
      } else {
        const float* row = xc + yi * g.w;
        for (std::int64_t t = 0; t < run; ++t) {
          const std::int64_t xi = (ox + t) * g.stride - g.pad + kj;
          o[t] = (xi >= 0 && xi < g.w) ? row[xi] : 0.0f;
        }
      }
      j += run;
    }
    for (std::int64_t j = cols; j < width; ++j) out[j] = 0.0f;
  }
}

/// Rows [r0, r0+rows) and pixels [j0, j0+cols) of one sample's im2col matrix into `t`
/// (j0 a multiple of kNr where t has panels); whole rows take the vector path, the rest
/// goes panel by panel the generic way.
inline void im2col(const ConvGeometry& g, const float* x, std::int64_t r0, std::int64_t rows, std::int64_t j0,
                   std::int64_t cols, const Im2colTarget& t) {
  if (whole_rows_apply(g, j0, cols, t)) return im2col_whole_rows(g, x, r0, rows, j0, cols, t);
  for (std::int64_t j = 0; j < cols; j += kNr) {
    const std::int64_t width = std::min(kNr, cols - j);
    im2col_block(g, x, r0, rows, j0 + j, width, t.at(0, j), t.ld, width);
  }
}

/// Whether the forward can read B straight from x (no im2col): stride 1, "same" padding
/// (output as large as the input, so pixel j of a tap reads x at j plus a fixed offset),
/// at most 5x5, and whole pixel panels (no panel spans two samples).
inline bool direct_applies(const ConvGeometry& g) {
  return g.stride == 1 && g.kh == g.kw && 2 * g.pad + 1 == g.kh && g.kh * g.kw <= 25 && (g.h * g.w) % kNr == 0;
}

/// offset[t]: where tap t of a direct_applies convolution reads, relative to the output pixel.
inline void direct_tap_offsets(const ConvGeometry& g, std::int64_t* offset) {
  for (std::int64_t t = 0; t < g.kh * g.kw; ++t) offset[t] = (t / g.kw - g.pad) * g.w + (t % g.kw - g.pad);
}

/// Padding masks [panel of a sample][tap][vector] of a direct_applies convolution, into
/// `buffer`: the same for every sample, so they are set once per call, pixel by pixel (a vector
/// may span several narrow rows).
inline const __mmask16* direct_padding_masks(const ConvGeometry& g, std::vector<__mmask16>& buffer) {
  const std::int64_t taps = g.kh * g.kw, panels_per_sample = g.h * g.w / kNr;
  buffer.assign(static_cast<std::size_t>(panels_per_sample * taps * 4), 0);
  __mmask16* const masks = buffer.data();
  for (std::int64_t yy = 0; yy < g.h; ++yy)
    for (std::int64_t xx = 0; xx < g.w; ++xx) {
      const std::int64_t j = yy * g.w + xx;
      const auto bit = static_cast<__mmask16>(1u << (j & 15));
      __mmask16* panel = masks + (j / kNr) * taps * 4 + (j % kNr) / 16;
      for (std::int64_t t = 0; t < taps; ++t) {
        const std::int64_t yi = yy + t / g.kw - g.pad, xi = xx + t % g.kw - g.pad;
        if (yi >= 0 && yi < g.h && xi >= 0 && xi < g.w) panel[4 * t] |= bit;
      }
    }
  return masks;
}

/// The micro-kernel of sgemm_avx512.hpp for MR (1..6) rows by 64 pixels with B read from the input: for channel ch
/// and tap t, the 4 vectors of the pixel panel are x_panel[ch * hw + offset[t] + 16 v],
/// masked by mask[t][v] (lanes whose input pixel falls into the padding read as zero; a
/// masked-off lane neither reads nor faults). A is packed [channels * taps][kMr].
template <int MR>
[[gnu::noinline]] void direct_kernel(std::int64_t channels, std::int64_t taps, const float* a, const float* x_panel,
                                     std::int64_t hw, const std::int64_t* offset, const __mmask16* mask,
                                     const float* bias, float beta, const float* residual, float* c, std::int64_t ldc) {
  // The sum starts from the rows' bias, if given, and the residual (laid out as c) is added as
  // it is stored (fused: no second pass over the output for either).
  __m512 acc[MR][4];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[i][j] = bias ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
  for (std::int64_t ch = 0; ch < channels; ++ch) {
    const float* xc = x_panel + ch * hw;
    for (std::int64_t t = 0; t < taps; ++t, a += kMr) {
      const float* b = xc + offset[t];
      __m512 bv[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) bv[j] = _mm512_maskz_loadu_ps(mask[4 * t + j], b + 16 * j);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
      }
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m512 r = acc[i][j];
      if (beta != 0.0f) r = _mm512_add_ps(r, _mm512_loadu_ps(ci + 16 * j));
      if (residual) r = _mm512_add_ps(r, _mm512_loadu_ps(residual + i * ldc + 16 * j));
      _mm512_storeu_ps(ci + 16 * j, r);
    }
  }
}

/// The bias of every sample and output channel of a fused convolution: bias[c] +
/// sample_bias[n, c] where a per-sample term is given (summed into `buffer` once per call),
/// else bias itself with a sample stride of zero; data is null when neither is given.
struct SampleBias {
  const float* data;
  std::int64_t sample_stride;
  const float* of(std::int64_t sample, std::int64_t channel) const {
    return data ? data + sample * sample_stride + channel : nullptr;
  }
};

inline SampleBias bias_per_sample(const ConvGeometry& g, const ConvEpilogue<float>& epilogue,
                                  std::vector<float>& buffer) {
  if (!epilogue.sample_bias) return SampleBias{epilogue.bias, 0};
  buffer.resize(static_cast<std::size_t>(g.n * g.c_out));
  for (std::int64_t i = 0; i < g.n; ++i)
    for (std::int64_t c = 0; c < g.c_out; ++c)
      buffer[static_cast<std::size_t>(i * g.c_out + c)] =
          epilogue.sample_bias[i * g.c_out + c] + (epilogue.bias ? epilogue.bias[c] : 0.0f);
  return SampleBias{buffer.data(), g.c_out};
}

/// The weights are given packed by pack_a (panels [c_out / kMr][c_in * taps][kMr]); the
/// epilogue's bias terms start each sum, its residual is added in the last store.
inline void conv2d_forward_direct_packed(const ConvGeometry& g, const float* x, const float* pa,
                                         const ConvEpilogue<float>& epilogue, float* y) {
  const std::int64_t m = g.c_out, taps = g.kh * g.kw, k = g.patch(), hw = g.h * g.w;
  const std::int64_t mpanels = (m + kMr - 1) / kMr, panels_per_sample = hw / kNr, panels = g.n * panels_per_sample;
  const std::int64_t nchunks = (panels + kNcPanels - 1) / kNcPanels;
  const std::int64_t block_channels =
      std::max<std::int64_t>(1, even_block(g.c_in, std::max<std::int64_t>(1, kKc / taps)));
  std::int64_t offset[25];
  direct_tap_offsets(g, offset);
  thread_local std::vector<__mmask16> mask_buffer;
  const __mmask16* const masks = direct_padding_masks(g, mask_buffer);
  thread_local std::vector<float> bias_buffer;
  const SampleBias bias = bias_per_sample(g, epilogue, bias_buffer);
#pragma omp parallel if (!omp_in_parallel())
  {
#pragma omp for schedule(dynamic)
    for (std::int64_t chunk = 0; chunk < nchunks; ++chunk) {
      const std::int64_t p0 = chunk * kNcPanels, p1 = std::min(panels, p0 + kNcPanels);
      for (std::int64_t p = p0; p < p1; ++p) {
        const std::int64_t i = p / panels_per_sample, j0 = (p % panels_per_sample) * kNr;
        const __mmask16* mask = masks + (p % panels_per_sample) * taps * 4;
        const float* xp = x + i * g.c_in * hw + j0;
        float* yp = y + i * m * hw + j0;
        const float* rp = epilogue.residual ? epilogue.residual + i * m * hw + j0 : nullptr;
        for (std::int64_t c0 = 0; c0 < g.c_in; c0 += block_channels) {
          const std::int64_t channels = std::min(block_channels, g.c_in - c0);
          const bool last = c0 + channels == g.c_in;
          for (std::int64_t mp = 0; mp < mpanels; ++mp)
            with_tile_rows(std::min(kMr, m - mp * kMr), [&]<int MR>() {
              direct_kernel<MR>(channels, taps, pa + mp * k * kMr + c0 * taps * kMr, xp + c0 * hw, hw, offset, mask,
                                c0 == 0 ? bias.of(i, mp * kMr) : nullptr, c0 == 0 ? 0.0f : 1.0f,
                                last && rp ? rp + mp * kMr * hw : nullptr, yp + mp * kMr * hw, hw);
            });
        }
      }
    }
  }
}

/// conv2d_forward_direct_packed for weights given row-major [c_out, c_in*kh*kw].
inline void conv2d_forward_direct(const ConvGeometry& g, const float* x, const float* weight,
                                  const ConvEpilogue<float>& epilogue, float* y) {
  const std::int64_t mpanels = (g.c_out + kMr - 1) / kMr, k = g.patch();
  thread_local std::vector<float> a_buffer;
  float* pa = thread_scratch(a_buffer, static_cast<std::size_t>(mpanels * k * kMr));
  pack_a(Trans::No, g.c_out, k, weight, k, pa, 0, mpanels);  // before the region, as in the im2col path
  conv2d_forward_direct_packed(g, x, pa, epilogue, y);
}

/// The same with only a bias [c_out] (nullptr: none).
inline void conv2d_forward_direct(const ConvGeometry& g, const float* x, const float* weight, const float* bias,
                                  float* y) {
  conv2d_forward_direct(g, x, weight, ConvEpilogue<float>{bias}, y);
}

/// y = conv(x, weight) for weights given row-major [c_out, c_in*kh*kw] (assigns).
inline void conv2d_forward_rowmajor(const ConvGeometry& g, const float* x, const float* weight, float* y) {
  if (direct_applies(g)) return conv2d_forward_direct(g, x, weight, nullptr, y);
  const std::int64_t m = g.c_out, k = g.patch(), n = g.out_hw();
  const std::int64_t mpanels = (m + kMr - 1) / kMr, panels_per_sample = (n + kNr - 1) / kNr;
  // Pixel panels of all samples form one sequence cut into chunks of kNcPanels, so small
  // images (8x8: one panel each) still give every weight panel several B panels to run over.
  const std::int64_t panels = g.n * panels_per_sample, nchunks = (panels + kNcPanels - 1) / kNcPanels;
  const std::int64_t kc_max = even_block(k, kKc);
  thread_local std::vector<float> a_buffer;
  float* pa = thread_scratch(a_buffer, static_cast<std::size_t>(mpanels * k * kMr));
  const std::int64_t x_stride = g.c_in * g.h * g.w, y_stride = m * n;
  // The weights are packed before the parallel region (a few percent of the work): a barrier
  // after a shared packing loop would hold the running thread until a descheduled one had
  // packed its half.
  pack_a(Trans::No, m, k, weight, k, pa, 0, mpanels);
#pragma omp parallel if (!omp_in_parallel())
  {
    thread_local std::vector<float> b_buffer;
    float* pb = thread_scratch(b_buffer, static_cast<std::size_t>(kc_max * kNcPanels * kNr));
    // Dynamic: on a shared machine a descheduled thread leaves its chunks to the other.
#pragma omp for schedule(dynamic)
    for (std::int64_t chunk = 0; chunk < nchunks; ++chunk) {
      const std::int64_t p0 = chunk * kNcPanels, p1 = std::min(panels, p0 + kNcPanels);
      for (std::int64_t k0 = 0; k0 < k; k0 += kc_max) {
        const std::int64_t kc = std::min(kc_max, k - k0);
        // One call per sample the chunk touches (8x8 images: four samples of one panel each).
        for (std::int64_t p = p0; p < p1;) {
          const std::int64_t i = p / panels_per_sample, q = std::min(p1, (i + 1) * panels_per_sample);
          const std::int64_t j0 = (p % panels_per_sample) * kNr,
                             cols = std::min(n, (q - i * panels_per_sample) * kNr) - j0;
          im2col(g, x + i * x_stride, k0, kc, j0, cols, Im2colTarget{pb + (p - p0) * kc * kNr, kNr, kc * kNr});
          p = q;
        }
        const float beta = k0 == 0 ? 0.0f : 1.0f;
        for (std::int64_t mp = 0; mp < mpanels; ++mp) {
          const AView av{pa + mp * k * kMr + k0 * kMr, 1, kMr};
          const std::int64_t mvalid = std::min(kMr, m - mp * kMr);
          for (std::int64_t p = p0; p < p1; ++p) {
            const std::int64_t i = p / panels_per_sample, j0 = (p % panels_per_sample) * kNr;
            micro_kernel(kc, av, mvalid, pb + (p - p0) * kc * kNr, kNr, std::min(kNr, n - j0), 1.0f, beta,
                         y + i * y_stride + mp * kMr * n + j0, n);
          }
        }
      }
    }
  }
}

/// Whether backward data can run as a forward convolution of dy (stride 1, square kernel, p < k).
inline bool backward_data_as_forward(const ConvGeometry& g) { return g.backward_data_is_forward(); }

/// dx = conv(dy, flip(W)^T) with padding k-1-p: the gradient of a stride-1 convolution (assigns).
inline void conv2d_backward_data_stride1(const ConvGeometry& g, const float* dy, const float* weight, float* dx) {
  const std::int64_t taps = g.kh * g.kw;
  const ConvGeometry t = g.backward_data_as_forward();
  if (direct_applies(t)) {
    // Flip, transpose and pack in one pass: panel p row i (input channel 6p + i), column
    // co * taps + u holds weight[co, 6p + i, taps - 1 - u]; rows past c_in are zero.
    const std::int64_t mpanels = (g.c_in + kMr - 1) / kMr, k = g.c_out * taps;
    thread_local std::vector<float> packed_buffer;
    float* pa = thread_scratch(packed_buffer, static_cast<std::size_t>(mpanels * k * kMr));
    for (std::int64_t p = 0; p < mpanels; ++p) {
      const std::int64_t rows = std::min(kMr, g.c_in - p * kMr);
      float* dst = pa + p * k * kMr;
      for (std::int64_t co = 0; co < g.c_out; ++co)
        for (std::int64_t u = 0; u < taps; ++u, dst += kMr)
          for (std::int64_t i = 0; i < kMr; ++i)
            dst[i] = i < rows ? weight[(co * g.c_in + p * kMr + i) * taps + (taps - 1 - u)] : 0.0f;
    }
    return conv2d_forward_direct_packed(t, dy, pa, ConvEpilogue<float>{}, dx);
  }
  thread_local std::vector<float> flipped_buffer;
  float* flipped = thread_scratch(flipped_buffer, static_cast<std::size_t>(g.c_in * g.c_out * taps));
  flip_kernels(g, weight, flipped);
  conv2d_forward_rowmajor(t, dy, flipped, dx);
}

/// Transposes the 16x16 block r[i][j] in place into r[j][i]: 32-bit pairs, then 64-bit
/// pairs inside each 128-bit lane, then 128-bit lanes twice.
inline void transpose16x16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4b + q], 128-bit lane L: rows 4b..4b+3 of column 4L + q.
  for (int b = 0; b < 4; ++b) {
    u[4 * b + 0] = _mm512_shuffle_ps(t[4 * b], t[4 * b + 2], 0x44);
    u[4 * b + 1] = _mm512_shuffle_ps(t[4 * b], t[4 * b + 2], 0xEE);
    u[4 * b + 2] = _mm512_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0x44);
    u[4 * b + 3] = _mm512_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0xEE);
  }
  for (int q = 0; q < 4; ++q) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88), v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88),
                 v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
    r[q] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[8 + q] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[4 + q] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[12 + q] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

/// dy_n [co, hw] -> dy_n^T as the micro-kernel's B operand, panels of [hw][kNr] output
/// channels `panel_stride` floats apart, in 16x16 register transposes (a scalar loop reads
/// dy hw floats apart: one cache line, often one page, per element). Channels past co are zero.
inline void pack_transposed_panels(std::int64_t co, std::int64_t hw, const float* dy, float* packed,
                                   std::int64_t panel_stride) {
  const std::int64_t npanels = (co + kNr - 1) / kNr;
  __m512 r[16];
  for (std::int64_t np = 0; np < npanels; ++np)
    for (std::int64_t p0 = 0; p0 < hw; p0 += 16) {
      const std::int64_t pixels = std::min<std::int64_t>(16, hw - p0);
      const __mmask16 mask = lane_range(0, pixels);
      for (std::int64_t c0 = np * kNr; c0 < (np + 1) * kNr; c0 += 16) {
        for (std::int64_t i = 0; i < 16; ++i)
          r[i] = c0 + i < co ? _mm512_maskz_loadu_ps(mask, dy + (c0 + i) * hw + p0) : _mm512_setzero_ps();
        transpose16x16(r);
        float* out = packed + np * panel_stride + p0 * kNr + (c0 - np * kNr);
        for (std::int64_t q = 0; q < pixels; ++q) _mm512_storeu_ps(out + q * kNr, r[q]);
      }
    }
}

/// Whether backward weight can read x in place (through a zero-padded copy) rather than
/// building im2col rows: stride 1 and "same" padding, so tap (ki, kj) of output pixel (y, x)
/// is padded pixel (y + ki, x + kj).
inline bool backward_weight_direct_applies(const ConvGeometry& g) {
  return g.stride == 1 && g.kh == g.kw && 2 * g.pad + 1 == g.kh;
}

/// The dW^T tile [MR rows (c_in, tap)] x [NV vectors of c_out] += sum over the pixels of
/// `samples` samples of x_pad[row] * dy^T[pixel]: row i's scalars are read from a[i] (its
/// channel's padded plane, shifted by its tap) at offset s * a_sample + y * wp + x, and the
/// c_out vectors from b at s * b_sample + (y * w + x) * kNr. No im2col: each scalar of x is
/// broadcast where the micro-kernel would have read its im2col copy.
// Never inlined: inside the OpenMP body the row pointers would be spilled to vector registers.
template <int MR, int NV, bool FullN>
[[gnu::noinline]] void backward_weight_direct_tile(const float* const* a, std::int64_t samples, std::int64_t a_sample,
                                                   std::int64_t h, std::int64_t w, std::int64_t wp, const float* b,
                                                   std::int64_t b_sample, std::int64_t nvalid, float* c,
                                                   std::int64_t ldc) {
  __m512 acc[MR][NV];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  __mmask16 mask[NV];
  for (int j = 0; j < NV; ++j) mask[j] = lane_range(0, nvalid - 16 * j);
  // The row pointers stay fixed and one offset walks the pixels (skipping the padding columns
  // at each row end), so the inner loop needs few registers besides the MR row pointers.
  const float* ap[MR];
  for (int i = 0; i < MR; ++i) ap[i] = a[i];
  for (std::int64_t s = 0; s < samples; ++s) {
    const float* bp = b + s * b_sample;
    std::int64_t off = s * a_sample;
    for (std::int64_t y = 0; y < h; ++y, off += wp - w) {
      for (const std::int64_t end = off + w; off < end; ++off, bp += kNr) {
        __m512 bv[NV];
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j)
          bv[j] = FullN ? _mm512_loadu_ps(bp + 16 * j) : _mm512_maskz_loadu_ps(mask[j], bp + 16 * j);
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
          const __m512 av = _mm512_set1_ps(ap[i][off]);
#pragma GCC unroll 4
          for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
      }
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      if (FullN) {
        _mm512_storeu_ps(ci + 16 * j, _mm512_add_ps(acc[i][j], _mm512_loadu_ps(ci + 16 * j)));
      } else {
        const __m512 old = _mm512_maskz_loadu_ps(mask[j], ci + 16 * j);
        _mm512_mask_storeu_ps(ci + 16 * j, mask[j], _mm512_add_ps(acc[i][j], old));
      }
    }
  }
}

/// dweight[c_out, c_in*kh*kw] += sum_n dy_n * col(x_n)^T. Each thread sums its samples into a
/// private dW^T, then the threads add theirs into dweight (accumulates). Small images go
/// several samples per group, their pixels side by side along k: each micro-kernel call then
/// runs at least 512 steps before it reads and writes its accumulator tile (at 8x8, one
/// sample is 64 steps, and 256 channels make a 2.4 MB accumulator that does not stay in L2).
inline void conv2d_backward_weight(const ConvGeometry& g, const float* x, const float* dy, float* dweight) {
  const std::int64_t k = g.patch(), co = g.c_out, hw = g.out_hw();
  const std::int64_t npanels = (co + kNr - 1) / kNr;
  const std::int64_t group = std::clamp<std::int64_t>(512 / hw, 1, g.n), groups = (g.n + group - 1) / group;
  const std::int64_t span = group * hw;          // pixels of a full group, the k of its GEMMs
  const std::int64_t rows_per_block = 16 * kMr;  // im2col rows built at a time (~400 KiB at 32x32)
  const std::int64_t ld = span + 16;             // keeps the 6 row streams off one cache set
  const std::int64_t x_stride = g.c_in * g.h * g.w;
  // Stride 1, "same" padding: x is read in place from a zero-padded copy, no im2col.
  const bool direct = backward_weight_direct_applies(g);
  const std::int64_t taps = g.kh * g.kw, hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad,
                     padded_stride = padded_sample_floats(g);
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  std::vector<float*> partial(static_cast<std::size_t>(threads), nullptr);
#pragma omp parallel num_threads(threads)
  {
    thread_local std::vector<float> acc_buffer, col_buffer, dyt_buffer;
    float* acc = thread_scratch(acc_buffer, static_cast<std::size_t>(k * co));
    float* col = direct ? nullptr : thread_scratch(col_buffer, static_cast<std::size_t>(rows_per_block * ld));
    float* dyt = thread_scratch(dyt_buffer, static_cast<std::size_t>(npanels * span * kNr));
    thread_local std::vector<float> pad_buffer;
    float* x_pad = direct ? thread_scratch(pad_buffer, static_cast<std::size_t>(group * padded_stride)) : nullptr;
    partial[static_cast<std::size_t>(omp_get_thread_num())] = acc;
    std::memset(acc, 0, sizeof(float) * k * co);
    // Static: each thread's partial sum then covers the same samples on every run, so with a
    // given thread count the float result is reproducible (a resumed run matches bit for bit).
#pragma omp for schedule(static)
    for (std::int64_t gi = 0; gi < groups; ++gi) {
      const std::int64_t i0 = gi * group, samples = std::min(group, g.n - i0), pixels = samples * hw;
      // dy^T of the group packed as the B operand: panels [pixels][kNr] of output channels.
      for (std::int64_t s = 0; s < samples; ++s)
        pack_transposed_panels(co, hw, dy + (i0 + s) * co * hw, dyt + s * hw * kNr, pixels * kNr);
      if (direct) {
        pad_samples(g, x + i0 * x_stride, samples, x_pad);
        for (std::int64_t r0 = 0; r0 < k; r0 += kMr) {
          const std::int64_t mvalid = std::min(kMr, k - r0);
          const float* rows[kMr];
          for (std::int64_t i = 0; i < mvalid; ++i) {
            const std::int64_t r = r0 + i, c = r / taps, ki = (r / g.kw) % g.kh, kj = r % g.kw;
            rows[i] = x_pad + c * hp * wp + ki * wp + kj;
          }
          for (std::int64_t np = 0; np < npanels; ++np) {
            const std::int64_t nvalid = std::min(kNr, co - np * kNr);
            with_tile_rows(mvalid, [&]<int MR>() {
              with_tile_vectors(nvalid, [&]<int NV, bool Full>() {
                backward_weight_direct_tile<MR, NV, Full>(rows, samples, padded_stride, g.h, g.w, wp,
                                                          dyt + np * pixels * kNr, hw * kNr, nvalid,
                                                          acc + r0 * co + np * kNr, co);
              });
            });
          }
        }
        continue;
      }
      for (std::int64_t r0 = 0; r0 < k; r0 += rows_per_block) {
        const std::int64_t rows = std::min(rows_per_block, k - r0);
        for (std::int64_t s = 0; s < samples; ++s)
          im2col(g, x + (i0 + s) * x_stride, r0, rows, 0, hw, Im2colTarget{col + s * hw, ld, kNr});
        for (std::int64_t mp = 0; mp * kMr < rows; ++mp) {
          const AView av{col + mp * kMr * ld, ld, 1};
          const std::int64_t mvalid = std::min(kMr, rows - mp * kMr);
          for (std::int64_t np = 0; np < npanels; ++np)
            micro_kernel(pixels, av, mvalid, dyt + np * pixels * kNr, kNr, std::min(kNr, co - np * kNr), 1.0f, 1.0f,
                         acc + (r0 + mp * kMr) * co + np * kNr, co);
        }
      }
    }
    // (implicit barrier: every partial sum is complete)
    add_transposed_thread_sums(partial, co, k, dweight);
  }
}

}  // namespace progdiff::backend::cpu::avx512
PROGDIFF_KERNELS_END
#endif

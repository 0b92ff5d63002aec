#pragma once
// bf16 mixed-precision convolutions (matmul_precision.hpp) on AVX512_BF16: the direct kernels of
// conv_avx512.hpp with both operands rounded to bf16 (round to nearest even, vcvtne2ps2bf16) and
// the products summed in fp32 by vdpbf16ps, which adds two bf16 products per fp32 lane:
// acc += a[2l] b[2l] + a[2l+1] b[2l+1]. The k dimension is therefore taken in pairs, each a
// 32-bit word holding two bf16 values (element 2k in the low half):
//   forward, backward data  k = (input channel, tap): the input is converted once per call into
//                           channel pairs [c_in / 2][h * w] (word = the two channels' pixel), so
//                           a tap's 16-pixel vector is still one masked load at a fixed offset;
//                           the weights are packed [c_out / kMr][c_in / 2][tap][kMr] words
//   backward weight         k = pixel: dy^T is packed as pixel pairs [pixels / 2][kNr] words and
//                           the zero-padded copy of x is kept in bf16, where two neighbouring
//                           pixels of a row are one 32-bit broadcast
// Inputs, outputs, weights and gradients stay fp32; only the products are bf16. The fp32 kernels
// are untouched: these run only when the precision is set to bf16.
#include "progdiff/backend/cpu/matmul_precision.hpp"

#if defined(__AVX512F__) && defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/conv_avx512.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/padded_sample.hpp"
#include "progdiff/backend/cpu/detail/sgemm_avx512.hpp"
#include "progdiff/backend/cpu/detail/thread_partial_sums.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx512::bf16 {

using Bf16 = std::uint16_t;  // the bits of one bf16 value
using Pair = std::uint32_t;  // two bf16 values, the first in the low half

/// 16 floats rounded to bf16 (nearest even), as 16 16-bit lanes.
inline __m256i round16(__m512 v) { return (__m256i)_mm512_cvtneps_pbh(v); }

/// dst[i] = bf16(src[i]) for n values.
inline void convert(const float* src, Bf16* dst, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), round16(_mm512_loadu_ps(src + i)));
  if (i < n) {
    const __mmask16 mask = lane_range(0, n - i);
    _mm256_mask_storeu_epi16(dst + i, mask, round16(_mm512_maskz_loadu_ps(mask, src + i)));
  }
}

/// 16 pairs (lo[l], hi[l]) rounded to bf16: word l holds lo[l] in its low half, hi[l] in its high.
inline __m512i pairs16(__m512 lo, __m512 hi) {
  // vcvtne2ps2bf16 puts its second operand in the 16-bit lanes 0-15 and its first in 16-31;
  // 16-bit lane 2l of the result takes lane l, lane 2l+1 takes lane 16 + l.
  const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
  const __m512i order =
      _mm512_setr_epi32(0x00100000, 0x00110001, 0x00120002, 0x00130003, 0x00140004, 0x00150005, 0x00160006, 0x00170007,
                        0x00180008, 0x00190009, 0x001A000A, 0x001B000B, 0x001C000C, 0x001D000D, 0x001E000E, 0x001F000F);
  return _mm512_permutexvar_epi16(order, both);
}

/// Sample x [c, hw] -> out [ceil(c / 2)][hw] words (channels 2p and 2p+1 of each pixel; zero
/// past c).
inline void to_channel_pairs(const float* x, std::int64_t c, std::int64_t hw, Pair* out) {
  for (std::int64_t p = 0; 2 * p < c; ++p) {
    const float* lo = x + 2 * p * hw;
    const float* hi = 2 * p + 1 < c ? lo + hw : nullptr;
    for (std::int64_t j = 0; j < hw; j += 16) {
      const __mmask16 mask = lane_range(0, hw - j);
      const __m512 a = _mm512_maskz_loadu_ps(mask, lo + j),
                   b = hi ? _mm512_maskz_loadu_ps(mask, hi + j) : _mm512_setzero_ps();
      _mm512_mask_storeu_epi32(out + p * hw + j, mask, pairs16(a, b));
    }
  }
}

/// Weights w(o, c, t) (o < m output rows, c < channels, t < taps) packed as the direct kernel's
/// A operand: panels [ceil(m / kMr)][ceil(channels / 2)][taps][kMr] words of channels 2p, 2p+1;
/// zero past m and channels. `staging` holds the fp32 copy that is rounded in one pass.
template <class W>
void pack_weights(std::int64_t m, std::int64_t channels, std::int64_t taps, W w, std::vector<float>& staging,
                  std::vector<Bf16>& packed) {
  const std::int64_t mpanels = (m + kMr - 1) / kMr, pairs = (channels + 1) / 2;
  const auto total = static_cast<std::size_t>(mpanels * pairs * taps * kMr * 2);
  if (staging.size() < total) staging.resize(total);
  if (packed.size() < total) packed.resize(total);
  float* dst = staging.data();
  for (std::int64_t mp = 0; mp < mpanels; ++mp)
    for (std::int64_t p = 0; p < pairs; ++p)
      for (std::int64_t t = 0; t < taps; ++t)
        for (std::int64_t i = 0; i < kMr; ++i)
          for (std::int64_t h = 0; h < 2; ++h) {
            const std::int64_t o = mp * kMr + i, c = 2 * p + h;
            *dst++ = o < m && c < channels ? w(o, c, t) : 0.0f;
          }
  convert(staging.data(), packed.data(), static_cast<std::int64_t>(total));
}

/// The direct kernel of conv_avx512.hpp in bf16: MR (1..6) rows by 64 pixels, for channel pair
/// p and tap t the 4 vectors of 16 pixel words x_panel[p * hw + offset[t] + 16 v] masked by
/// mask[t][v]; A packed [pairs * taps][kMr] words.
template <int MR>
[[gnu::noinline]] void direct_kernel(std::int64_t pairs, std::int64_t taps, const Pair* a, const Pair* x_panel,
                                     std::int64_t hw, const std::int64_t* offset, const __mmask16* mask,
                                     const float* bias, float beta, float* c, std::int64_t ldc) {
  __m512 acc[MR][4];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[i][j] = bias ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
  for (std::int64_t p = 0; p < pairs; ++p) {
    const Pair* xc = x_panel + p * hw;
    for (std::int64_t t = 0; t < taps; ++t, a += kMr) {
      const Pair* b = xc + offset[t];
      __m512bh bv[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) bv[j] = (__m512bh)_mm512_maskz_loadu_epi32(mask[4 * t + j], b + 16 * j);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i]));
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
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
      _mm512_storeu_ps(ci + 16 * j, r);
    }
  }
}

/// Per-thread scratch of the bf16 kernels (grow-only, kept across calls).
struct Scratch {
  std::vector<float> staging, x_pad, dyt;
  std::vector<Bf16> weights, x_pad_bf16;
  std::vector<Pair> x_pairs, dy_pairs;
};
inline Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

template <class T>
T* grow(std::vector<T>& buffer, std::int64_t n) {
  if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
  return buffer.data();
}

/// y = conv(x, W) (+ bias; nullptr: none) for a geometry direct_applies to, W packed by
/// pack_weights (assigns).
inline void conv2d_forward_direct_packed(const ConvGeometry& g, const float* x, const Pair* pa, const float* bias,
                                         float* y) {
  const std::int64_t m = g.c_out, taps = g.kh * g.kw, hw = g.h * g.w, pairs = (g.c_in + 1) / 2;
  const std::int64_t mpanels = (m + kMr - 1) / kMr, panels_per_sample = hw / kNr, panels = g.n * panels_per_sample;
  const std::int64_t nchunks = (panels + kNcPanels - 1) / kNcPanels;
  // As many k steps per block as the fp32 kernel takes (kKc): the same bytes of input per block.
  const std::int64_t block_pairs = std::max<std::int64_t>(1, even_block(pairs, std::max<std::int64_t>(1, kKc / taps)));
  std::int64_t offset[25];
  direct_tap_offsets(g, offset);
  thread_local std::vector<__mmask16> mask_buffer;
  const __mmask16* const masks = direct_padding_masks(g, mask_buffer);
  const std::int64_t x_stride = pairs * hw;
  Pair* const xb = grow(scratch().x_pairs, g.n * x_stride);
#pragma omp parallel if (!omp_in_parallel())
  {
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < g.n; ++i) to_channel_pairs(x + i * g.c_in * hw, g.c_in, hw, xb + i * x_stride);
      // (implicit barrier: xb is complete)
#pragma omp for schedule(dynamic)
    for (std::int64_t chunk = 0; chunk < nchunks; ++chunk) {
      const std::int64_t p0 = chunk * kNcPanels, p1 = std::min(panels, p0 + kNcPanels);
      for (std::int64_t p = p0; p < p1; ++p) {
        const std::int64_t i = p / panels_per_sample, j0 = (p % panels_per_sample) * kNr;
        const __mmask16* mask = masks + (p % panels_per_sample) * taps * 4;
        const Pair* xp = xb + i * x_stride + j0;
        float* yp = y + i * m * hw + j0;
        for (std::int64_t q0 = 0; q0 < pairs; q0 += block_pairs) {
          const std::int64_t count = std::min(block_pairs, pairs - q0);
          for (std::int64_t mp = 0; mp < mpanels; ++mp)
            with_tile_rows(std::min(kMr, m - mp * kMr), [&]<int MR>() {
              direct_kernel<MR>(count, taps, pa + (mp * pairs + q0) * taps * kMr, xp + q0 * hw, hw, offset, mask,
                                q0 == 0 && bias ? bias + mp * kMr : nullptr, q0 == 0 ? 0.0f : 1.0f, yp + mp * kMr * hw,
                                hw);
            });
        }
      }
    }
  }
}

/// y = conv(x, weight) + bias (bias may be nullptr) for weights row-major [c_out, c_in, kh, kw]
/// and a geometry direct_applies to (assigns).
inline void conv2d_forward_direct(const ConvGeometry& g, const float* x, const float* weight, const float* bias,
                                  float* y) {
  const std::int64_t taps = g.kh * g.kw, c_in = g.c_in;
  Scratch& s = scratch();
  pack_weights(
      g.c_out, g.c_in, taps,
      [&](std::int64_t o, std::int64_t c, std::int64_t t) { return weight[(o * c_in + c) * taps + t]; }, s.staging,
      s.weights);
  conv2d_forward_direct_packed(g, x, reinterpret_cast<const Pair*>(s.weights.data()), bias, y);
}

/// Whether backward data runs here: stride 1 and the transposed convolution direct_applies.
inline bool backward_data_applies(const ConvGeometry& g) {
  if (!backward_data_as_forward(g)) return false;
  ConvGeometry t = g;
  t.h = g.out_h();
  t.w = g.out_w();
  t.pad = g.kh - 1 - g.pad;
  return direct_applies(t);
}

/// dx = conv(dy, flip(W)^T) with padding k-1-p, the gradient of a stride-1 convolution (assigns).
inline void conv2d_backward_data(const ConvGeometry& g, const float* dy, const float* weight, float* dx) {
  const std::int64_t taps = g.kh * g.kw, c_in = g.c_in;
  ConvGeometry t = g;
  t.c_in = g.c_out;
  t.c_out = g.c_in;
  t.h = g.out_h();
  t.w = g.out_w();
  t.pad = g.kh - 1 - g.pad;
  Scratch& s = scratch();
  // Row o of the transposed convolution is input channel o; its channel c is output channel c.
  pack_weights(
      g.c_in, g.c_out, taps,
      [&](std::int64_t o, std::int64_t c, std::int64_t u) { return weight[(c * c_in + o) * taps + (taps - 1 - u)]; },
      s.staging, s.weights);
  conv2d_forward_direct_packed(t, dy, reinterpret_cast<const Pair*>(s.weights.data()), nullptr, dx);
}

/// Whether backward weight runs here: stride 1, "same" padding and rows of an even width (pixel
/// pairs never span two rows).
inline bool backward_weight_applies(const ConvGeometry& g) { return backward_weight_direct_applies(g) && g.w % 2 == 0; }

/// backward_weight_direct_tile of conv_avx512.hpp in bf16: the dW^T tile [MR rows (c_in, tap)] x
/// [NV vectors of c_out] += sum over the pixels of x_pad[row] * dy^T[pixel], two pixels per step.
/// Row i's bf16 values are read from a[i] at offset s * a_sample + y * wp + x (x even: the word
/// there holds pixels x and x+1), the c_out words from b at s * b_sample + (y * w + x) / 2 * kNr.
template <int MR, int NV, bool FullN>
[[gnu::noinline]] void backward_weight_tile(const Bf16* const* a, std::int64_t samples, std::int64_t a_sample,
                                            std::int64_t h, std::int64_t w, std::int64_t wp, const Pair* b,
                                            std::int64_t b_sample, std::int64_t nvalid, float* c, std::int64_t ldc) {
  __m512 acc[MR][NV];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  __mmask16 mask[NV];
  for (int j = 0; j < NV; ++j) mask[j] = lane_range(0, nvalid - 16 * j);
  const Bf16* ap[MR];
  for (int i = 0; i < MR; ++i) ap[i] = a[i];
  for (std::int64_t s = 0; s < samples; ++s) {
    const Pair* bp = b + s * b_sample;
    std::int64_t off = s * a_sample;
    for (std::int64_t y = 0; y < h; ++y, off += wp - w) {
      for (const std::int64_t end = off + w; off < end; off += 2, bp += kNr) {
        __m512bh bv[NV];
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j)
          bv[j] = (__m512bh)(FullN ? _mm512_loadu_si512(bp + 16 * j) : _mm512_maskz_loadu_epi32(mask[j], bp + 16 * j));
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
          Pair word;
          std::memcpy(&word, ap[i] + off, sizeof word);
          const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(word));
#pragma GCC unroll 4
          for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
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

/// dweight[c_out, c_in*kh*kw] += sum_n dy_n * col(x_n)^T for a geometry backward_weight_applies
/// to, as conv_avx512.hpp's conv2d_backward_weight does it (groups of samples, a private dW^T
/// per thread summed at the end, static schedule: reproducible for a given thread count).
inline void conv2d_backward_weight(const ConvGeometry& g, const float* x, const float* dy, float* dweight) {
  const std::int64_t k = g.patch(), co = g.c_out, hw = g.out_hw();
  const std::int64_t npanels = (co + kNr - 1) / kNr;
  const std::int64_t group = std::clamp<std::int64_t>(512 / hw, 1, g.n), groups = (g.n + group - 1) / group;
  const std::int64_t span = group * hw, x_stride = g.c_in * g.h * g.w;
  const std::int64_t taps = g.kh * g.kw, hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad,
                     padded_stride = padded_sample_floats(g);
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  std::vector<float*> partial(static_cast<std::size_t>(threads), nullptr);
#pragma omp parallel num_threads(threads)
  {
    Scratch& own = scratch();
    thread_local std::vector<float> acc_buffer;
    float* acc = grow(acc_buffer, k * co);
    float* dyt = grow(own.dyt, npanels * span * kNr);
    Pair* dyp = grow(own.dy_pairs, npanels * span / 2 * kNr);
    float* x_pad = grow(own.x_pad, group * padded_stride);
    Bf16* x_pad_b = grow(own.x_pad_bf16, group * padded_stride);
    partial[static_cast<std::size_t>(omp_get_thread_num())] = acc;
    std::memset(acc, 0, sizeof(float) * k * co);
#pragma omp for schedule(static)
    for (std::int64_t gi = 0; gi < groups; ++gi) {
      const std::int64_t i0 = gi * group, samples = std::min(group, g.n - i0), pixels = samples * hw;
      for (std::int64_t s = 0; s < samples; ++s)
        pack_transposed_panels(co, hw, dy + (i0 + s) * co * hw, dyt + s * hw * kNr, pixels * kNr);
      // Pixel pairs: word (q, column) holds pixels 2q and 2q+1 of that output channel.
      for (std::int64_t np = 0; np < npanels; ++np) {
        const float* in = dyt + np * pixels * kNr;
        Pair* out = dyp + np * (pixels / 2) * kNr;
        for (std::int64_t q = 0; q < pixels / 2; ++q)
          for (std::int64_t v = 0; v < kNr; v += 16)
            _mm512_storeu_si512(out + q * kNr + v, pairs16(_mm512_loadu_ps(in + 2 * q * kNr + v),
                                                           _mm512_loadu_ps(in + (2 * q + 1) * kNr + v)));
      }
      pad_samples(g, x + i0 * x_stride, samples, x_pad);
      convert(x_pad, x_pad_b, samples * padded_stride);
      for (std::int64_t r0 = 0; r0 < k; r0 += kMr) {
        const std::int64_t mvalid = std::min(kMr, k - r0);
        const Bf16* rows[kMr];
        for (std::int64_t i = 0; i < mvalid; ++i) {
          const std::int64_t r = r0 + i, c = r / taps, ki = (r / g.kw) % g.kh, kj = r % g.kw;
          rows[i] = x_pad_b + c * hp * wp + ki * wp + kj;
        }
        for (std::int64_t np = 0; np < npanels; ++np) {
          const std::int64_t nvalid = std::min(kNr, co - np * kNr);
          with_tile_rows(mvalid, [&]<int MR>() {
            with_tile_vectors(nvalid, [&]<int NV, bool Full>() {
              backward_weight_tile<MR, NV, Full>(rows, samples, padded_stride, g.h, g.w, wp,
                                                 dyp + np * (pixels / 2) * kNr, hw / 2 * kNr, nvalid,
                                                 acc + r0 * co + np * kNr, co);
            });
          });
        }
      }
    }
    // (implicit barrier: every partial sum is complete)
    add_transposed_thread_sums(partial, co, k, dweight);
  }
}

}  // namespace progdiff::backend::cpu::avx512::bf16
PROGDIFF_KERNELS_END
#endif

#pragma once
// Winograd F(4x4, 3x3) forward for AVX2 targets without AVX-512, and the AVX2 Winograd forward's
// choice of tile. Each 4x4 output tile is A^T [ (G g G^T) . (B^T d B) ] A of its 6x6 input tile
// d, with the interpolation points 0, 1, -1, 2, -2 and infinity (Lavin and Gray, 2016): 36
// multiplies per tile and channel pair for 16 outputs, 4x fewer than a direct convolution's 144
// (F(2x2, 3x3): 2.25x), and the transformed tiles that go through memory are 2.25 floats per
// output instead of 4. The price is rounding: the transforms' coefficients (4, 5, 8, 1/6, 1/24)
// amplify it, so the error against the exact convolution is several times F(2x2)'s (measured in
// docs/performance.md; the tests bound it).
//
// The layout is F(2x2)'s (detail/winograd_avx2.hpp): 8 consecutive tiles of a tile row along the
// vector lanes (two tile rows of 4 side by side on a 16-pixel-wide image), their windows read
// straight from the input rows by a 4x8 lane transpose, the transformed tiles written as the
// micro-kernel's packed B panels, 36 GEMMs, and the output transform adding the epilogue's terms
// as it stores y. Images whose rows are not 4 or at least 8 tiles wide (8x8, 24x24) keep F(2x2).
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "progdiff/backend/cpu/detail/winograd_avx2.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx2 {

namespace winograd4 {

using portable::Floats;
using winograd::kLanes;
inline constexpr std::int64_t kTile = 4;
inline constexpr std::int64_t kPositions = 36;  // a 6x6 transformed tile

/// Whether F(4x4) takes g (3x3, stride 1, pad 1): rows of 4 tiles (two to a vector) or of 8 and more.
inline bool applies(const ConvGeometry& g) {
  const std::int64_t tw = (g.w + kTile - 1) / kTile;
  return g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad == 1 && (tw >= kLanes || tw == 4);
}

inline std::int64_t transformed_weights_floats(const ConvGeometry& g) {
  return winograd::transformed_weights_floats(g, kPositions);
}

/// G g of one line of three: (a/4, -(a + b + c)/6, -(a - b + c)/6, a/24 + b/12 + c/6,
/// a/24 - b/12 + c/6, c).
inline void kernel_line(float a, float b, float c, float out[6]) {
  const float ac = a + c, p = a / 24.0f + c / 6.0f, q = b / 12.0f;
  out[0] = a / 4.0f;
  out[1] = -(ac + b) / 6.0f;
  out[2] = -(ac - b) / 6.0f;
  out[3] = p + q;
  out[4] = p - q;
  out[5] = c;
}

/// U_e = (G g G^T)[e] for every kernel g, e = 6 row + column, each U_e [c_out, c_in] packed as the
/// micro-kernel's A panels (as winograd::pack_positions lays them out), written straight into
/// place: training transforms the weights on every forward and backward-data call, and a
/// transform into a buffer then packed took as long as the 64-channel 16x16 forward it served.
inline void transform_weights(const ConvGeometry& g, const float* weight, float* packed) {
  constexpr std::int64_t Mr = Kernel::kMr;
  const std::int64_t co = g.c_out, ci = g.c_in, mpanels = (co + Mr - 1) / Mr, per_position = mpanels * ci * Mr;
  if (co % Mr != 0)  // the last panel's rows past c_out
    for (std::int64_t e = 0; e < kPositions; ++e)
      for (std::int64_t i = 0; i < ci; ++i)
        for (std::int64_t r = co % Mr; r < Mr; ++r) packed[e * per_position + (mpanels - 1) * ci * Mr + i * Mr + r] = 0;
#pragma omp parallel for schedule(static) if (co * ci >= 1024 && !omp_in_parallel())
  for (std::int64_t o = 0; o < co; ++o) {
    float* panel = packed + (o / Mr) * ci * Mr + o % Mr;
    for (std::int64_t i = 0; i < ci; ++i) {
      const float* k = weight + (o * ci + i) * 9;
      float rows[3][6];  // G along each of the kernel's columns: rows[c][r] = (G g)[r][c]
      for (int c = 0; c < 3; ++c) kernel_line(k[c], k[3 + c], k[6 + c], rows[c]);
      for (int r = 0; r < 6; ++r) {
        float u[6];  // row r of (G g) G^T
        kernel_line(rows[0][r], rows[1][r], rows[2][r], u);
        for (int c = 0; c < 6; ++c) panel[(6 * r + c) * per_position + i * Mr] = u[c];
      }
    }
  }
}

/// B^T d of one line of six: t0 = 4 d0 - 5 d2 + d4, t1,2 = (d4 - 4 d2) -+ (4 d1 - d3),
/// t3,4 = (d4 - d2) -+ 2 (d1 - d3), t5 = 4 d1 - 5 d3 + d5.
inline void input_line(const Floats d[6], Floats t[6]) {
  const Floats a = d[4] - 4.0f * d[2], b = d[3] - 4.0f * d[1];
  const Floats c = d[4] - d[2], e = d[3] - d[1];
  t[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
  t[1] = a + b;
  t[2] = a - b;
  t[3] = c + 2.0f * e;
  t[4] = c - 2.0f * e;
  t[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

/// A^T m of one line of six: the four outputs.
inline void output_line(const Floats m[6], Floats y[4]) {
  const Floats s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
  y[0] = m[0] + s12 + s34;
  y[1] = d12 + 2.0f * d34;
  y[2] = s12 + 4.0f * s34;
  y[3] = d12 + 8.0f * d34 + m[5];
}

/// The 4x4 transposes of the two 128-bit halves of four vectors: out[j] lane k of each half is
/// in[k] lane j of that half. Four pixels of a tile per half go in, one column of four tiles per
/// half comes out, and back again for the outputs: in-lane shuffles only, one instruction each.
inline void transpose_halves(const Floats in[4], Floats out[4]) {
  const Floats a = __builtin_shufflevector(in[0], in[1], 0, 8, 1, 9, 4, 12, 5, 13);
  const Floats b = __builtin_shufflevector(in[0], in[1], 2, 10, 3, 11, 6, 14, 7, 15);
  const Floats c = __builtin_shufflevector(in[2], in[3], 0, 8, 1, 9, 4, 12, 5, 13);
  const Floats d = __builtin_shufflevector(in[2], in[3], 2, 10, 3, 11, 6, 14, 7, 15);
  out[0] = __builtin_shufflevector(a, c, 0, 1, 8, 9, 4, 5, 12, 13);
  out[1] = __builtin_shufflevector(a, c, 2, 3, 10, 11, 6, 7, 14, 15);
  out[2] = __builtin_shufflevector(b, d, 0, 1, 8, 9, 4, 5, 12, 13);
  out[3] = __builtin_shufflevector(b, d, 2, 3, 10, 11, 6, 7, 14, 15);
}

/// The columns d0 .. d5 of one row of the 6x6 input windows of a vector of tiles. The lanes hold
/// the tiles in the order the transposes leave them; V and M keep it, and the output transform
/// undoes it. A row of 8 tiles from tile column tj0 (q = 1): the 32 floats from column 4 tj0 of
/// `row` (w floats; null for a padding row), zeros past w, are 8 tiles' columns 0-3, and the lanes
/// hold tiles 0, 2, 4, 6, 1, 3, 5, 7. Two rows of 4 tiles (q = 2, w <= 16): `row` and `next` (the
/// row 4 below, of the next tile row) give tiles 0, 2 of row and next, then 1, 3 of each. d0 and
/// d5, a tile's columns -1 and 4, are the neighbours' columns 3 and 0, with the pixels either
/// side of the 8 tiles (zeros at the border) shifted in.
inline void window_columns(const float* row, const float* next, std::int64_t w, std::int64_t tj0, std::int64_t q,
                           Floats d[6]) {
  Floats v[4];
  if (q == 1) {
    if (!row) {
      for (int k = 0; k < 6; ++k) d[k] = Floats{};
      return;
    }
    const std::int64_t s = kTile * tj0;
    for (int k = 0; k < 4; ++k) v[k] = winograd::row_vector(row, w, s + k * kLanes);
    transpose_halves(v, d + 1);
    const Floats left = portable::broadcast(s > 0 ? row[s - 1] : 0.0f);
    const Floats right = portable::broadcast(s + 4 * kLanes < w ? row[s + 4 * kLanes] : 0.0f);
    d[0] = __builtin_shufflevector(d[4], left, 8, 4, 5, 6, 0, 1, 2, 3);
    d[5] = __builtin_shufflevector(d[1], right, 4, 5, 6, 7, 1, 2, 3, 8);
    return;
  }
  for (int k = 0; k < 2; ++k) {
    v[k] = row ? winograd::row_vector(row, w, k * kLanes) : Floats{};
    v[2 + k] = next ? winograd::row_vector(next, w, k * kLanes) : Floats{};
  }
  transpose_halves(v, d + 1);
  const Floats zero{};
  d[0] = __builtin_shufflevector(d[4], zero, 8, 4, 8, 6, 0, 1, 2, 3);
  d[5] = __builtin_shufflevector(d[1], zero, 4, 5, 6, 7, 1, 8, 3, 8);
}

/// The lane of a row's vector of 8 tiles (window_columns, q = 1) that holds its tile k: tiles
/// 0, 2, 4, 6 in lanes 0-3 and 1, 3, 5, 7 in lanes 4-7.
constexpr int lane_of_tile(std::int64_t k) { return static_cast<int>(k / 2 + (k % 2) * 4); }

/// The tiles of tile rows [ti0, ti1) of one sample: input transform into V (panels of 16 tiles per
/// position), the 36 GEMMs into M [36][c_out][ldm], output transform into y with the sample's
/// epilogue terms.
inline void forward_block(const ConvGeometry& g, const float* x, const float* packed_u, std::int64_t ti0,
                          std::int64_t ti1, float* v, float* m, const portable::SampleEpilogue& terms, float* y) {
  const std::int64_t ci_count = g.c_in, co_count = g.c_out, h = g.h, w = g.w;
  const winograd::BlockLayout layout(g, ti1 - ti0, kTile);
  const std::int64_t tw = layout.tw, q = layout.rows_per_vector;
  const std::int64_t ldm = layout.ldm, v_stride = layout.v_stride, m_stride = layout.m_stride;
  const std::int64_t ti_end = ti0 + layout.padded_rows;  // past ti1 only for narrow rows: never stored
  winograd::for_each_tile_vector(
      g, layout, x, ti0,
      [&](const auto& input_row, std::int64_t ci, std::int64_t ti, std::int64_t tj0, std::int64_t lanes,
          std::int64_t tile) {
        Floats t[6][6];  // B^T along each window row
        for (int r = 0; r < 6; ++r) {
          Floats d[6];
          window_columns(input_row(kTile * ti - 1 + r), input_row(kTile * ti + 3 + r), w, tj0, q, d);
          input_line(d, t[r]);
        }
        for (int c = 0; c < 6; ++c) {
          const Floats column[6] = {t[0][c], t[1][c], t[2][c], t[3][c], t[4][c], t[5][c]};
          Floats col[6];
          input_line(column, col);
          for (int r = 0; r < 6; ++r)  // the lanes hold the tiles in window_columns' order
            winograd::store_tiles(v + (6 * r + c) * v_stride, ci_count, ci, tile, col[r], lanes, lane_of_tile);
        }
      });
  winograd::multiply_positions(g, kPositions, packed_u, layout, v, m);
  const bool with_terms = !terms.empty();
  // Stores `count` pixels (at most a vector) of channel co at offset p, with the epilogue's terms.
  const auto put = [&](float* plane, std::int64_t co, std::int64_t p, Floats value, std::int64_t count) {
    if (count <= 0) return;
    count = std::min(count, kLanes);
    if (with_terms) value = terms.add(value, co, h * w, p, count);
    portable::store(plane + p, value, count);
  };
  for (std::int64_t co = 0; co < co_count; ++co) {
    float* plane = y + co * h * w;
    for (std::int64_t ti = ti0; ti < ti_end; ti += q)
      for (std::int64_t tj0 = 0; tj0 < tw; tj0 += kLanes) {
        const std::int64_t tile = (ti - ti0) * tw + tj0, lanes = q > 1 ? kLanes : std::min(kLanes, tw - tj0);
        // The vector of M_e's tiles in the lanes' order (see the input transform's last tiles).
        const auto m_vector = [&](const float* me) {
          if (lanes == kLanes) return winograd::load(me);
          Floats v{};
          for (std::int64_t k = 0; k < lanes; ++k) v[lane_of_tile(k)] = me[k];
          return v;
        };
        Floats a[4][6];  // A^T along each column of M
        for (int c = 0; c < 6; ++c) {
          Floats column[6], out[4];
          for (int r = 0; r < 6; ++r) column[r] = m_vector(m + (6 * r + c) * m_stride + co * ldm + tile);
          output_line(column, out);
          for (int r = 0; r < 4; ++r) a[r][c] = out[r];
        }
        for (int r = 0; r < 4; ++r) {
          Floats yr[4], pixels[4];
          output_line(a[r], yr);
          transpose_halves(yr, pixels);
          if (q > 1) {  // pixels 0, 1: tile row ti; 2, 3: tile row ti + 1 (16 pixels each, w of them stored)
            for (std::int64_t s = 0; s < 2 && ti + s < ti1; ++s) {
              const std::int64_t oy = kTile * (ti + s) + r;
              if (oy >= h) break;
              put(plane, co, oy * w, pixels[2 * s], w);
              put(plane, co, oy * w + kLanes, pixels[2 * s + 1], w - kLanes);
            }
            continue;
          }
          const std::int64_t oy = kTile * ti + r;
          if (oy >= h) break;
          const std::int64_t x0 = kTile * tj0;
          for (int k = 0; k < 4; ++k) put(plane, co, oy * w + x0 + k * kLanes, pixels[k], w - x0 - k * kLanes);
        }
      }
  }
}

}  // namespace winograd4

/// The output tile side the AVX2 Winograd forward takes for g: 4 where F(4x4) takes g and
/// `largest_tile` allows it, else 2.
inline std::int64_t winograd_tile(const ConvGeometry& g, std::int64_t largest_tile = 4) {
  return largest_tile >= 4 && winograd4::applies(g) ? 4 : 2;
}

/// Whether the AVX2 Winograd forward takes g with output tiles of at most `largest_tile` pixels a
/// side: F(2x2) takes it (winograd_forward_applies), or F(4x4) is allowed and takes it (rows of
/// 13 or 14 pixels are F(4x4)'s alone); either way with `min_channels` or more on both sides.
inline bool winograd_takes(const ConvGeometry& g, std::int64_t min_channels, std::int64_t largest_tile) {
  return winograd_forward_applies(g, min_channels) ||
         (winograd_tile(g, largest_tile) == 4 && g.c_in >= min_channels && g.c_out >= min_channels);
}

/// Floats of g's transformed weights for the tile side `tile`.
inline std::int64_t winograd_weights_floats(const ConvGeometry& g, std::int64_t tile) {
  return tile == 4 ? winograd4::transformed_weights_floats(g) : winograd::transformed_weights_floats(g);
}

/// Transforms g's weights for the tile side `tile` into winograd_weights_floats(g, tile) floats.
inline void transform_winograd_weights(const ConvGeometry& g, std::int64_t tile, const float* weight, float* packed) {
  if (tile == 4) return winograd4::transform_weights(g, weight, packed);
  winograd::transform_weights(g, weight, packed);
}

/// y = conv(x, weight) + the epilogue's terms (assigns) by Winograd with output tiles of side
/// `tile` (winograd_tile(g, ...)), the weights already transformed for it: a layer's transform,
/// kept across sampling steps, is reused (winograd_weight_cache.hpp). winograd_takes(g, ..., tile) holds.
inline void conv2d_winograd_forward_transformed(const ConvGeometry& g, std::int64_t tile, const float* x,
                                                const float* packed_u, float* y,
                                                const ConvEpilogue<float>& epilogue = {}) {
  if (tile == 4)
    return winograd::forward_by_blocks(g, 4, winograd4::kPositions, x, packed_u, y, epilogue, winograd4::forward_block);
  conv2d_winograd2_forward_transformed(g, x, packed_u, y, epilogue);
}

/// y = conv(x, weight) + the epilogue's terms (assigns) by Winograd with output tiles of side
/// `tile`, transforming the weights on this call; winograd_takes(g, ..., tile) holds.
inline void conv2d_winograd_forward(const ConvGeometry& g, std::int64_t tile, const float* x, const float* weight,
                                    float* y, const ConvEpilogue<float>& epilogue = {}) {
  thread_local std::vector<float> u_buffer;
  float* packed_u = packed_sgemm::thread_scratch(u_buffer, static_cast<std::size_t>(winograd_weights_floats(g, tile)));
  transform_winograd_weights(g, tile, weight, packed_u);
  conv2d_winograd_forward_transformed(g, tile, x, packed_u, y, epilogue);
}

}  // namespace progdiff::backend::cpu::avx2
PROGDIFF_KERNELS_END
#endif

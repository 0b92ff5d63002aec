#pragma once
// Winograd F(2x2, 3x3) forward for AVX2 targets without AVX-512: each 2x2 output tile is
// A^T [ (G g G^T) . (B^T d B) ] A of its 4x4 input tile d, 16 multiplies per tile and channel
// pair instead of 36 (Lavin and Gray, 2016; the transforms as in detail/winograd_avx512.hpp).
//
// Tiles run along the vector lanes, 8 consecutive tiles of a tile row at a time (two rows of 4
// side by side on an 8-pixel-wide image): their 4x4 input windows, 2 pixels apart, are split
// out of two vector loads of each input row by even/odd lane shuffles, the padding shifted in.
// The transformed tiles are
// written straight into the micro-kernel's packed B layout, one panel of 16 tiles per position
// e, so the 16 products M_e[c_out, tiles] = U_e[c_out, c_in] V_e[c_in, tiles] run on the AVX2
// micro-kernel (detail/sgemm_avx2.hpp) with the transformed weights U_e packed once per call, or
// once for many by a layer's weight cache (winograd_weight_cache.hpp). A sample's tiles go a few
// tile rows at a time, so that V and M stay in L2; samples run in parallel. The epilogue's terms
// (bias, per-sample bias, residual) are added as the output transform stores y.
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "progdiff/backend/conv_epilogue.hpp"
#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/conv_epilogue_portable.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/packed_sgemm.hpp"
#include "progdiff/backend/cpu/detail/sgemm_avx2.hpp"
#include "progdiff/backend/cpu/detail/vector_math_portable.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx2 {

/// Whether the AVX2 Winograd forward takes the convolution: 3x3, stride 1, pad 1 ("same"), rows
/// that fill the 8-tile vectors (at least 8 tiles, 16 pixels, or 4 tiles, so that a vector holds
/// two whole tile rows: the 8x8 level of a U-Net), and at least `min_channels` channels on both
/// sides (below that the transforms' traffic outweighs the 2.25x fewer multiply-adds). Not rows
/// of 2 tiles: a 4x4 image is 4 tiles a sample, a quarter of a micro-kernel panel, and ran 2-3x
/// slower than the implicit GEMM.
inline bool winograd_forward_applies(const ConvGeometry& g, std::int64_t min_channels) {
  const std::int64_t tw = (g.w + 1) / 2;
  return g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad == 1 && (tw >= 8 || tw == 4) && g.c_in >= min_channels &&
         g.c_out >= min_channels;
}

namespace winograd {

using portable::Floats;
inline constexpr std::int64_t kPositions = 16;  // a 4x4 transformed tile
inline constexpr std::int64_t kLanes = 8;       // tiles per vector

/// Tile rows per vector of tiles: 1 for rows of 8 or more tiles, 2 for the narrow rows of 4
/// tiles, whose vectors hold two tile rows side by side.
inline std::int64_t rows_per_vector(std::int64_t tw) { return tw >= kLanes ? 1 : 2; }

/// The distance in floats between the buffers of consecutive positions e for `size` floats each:
/// an odd number of cache lines, so that the 16 positions' lines fall in 16 different L1 sets
/// (a multiple of 4 KiB would put all 16 in one set, and the transforms touch all 16 at once).
inline std::int64_t position_stride(std::int64_t size) {
  const std::int64_t lines = (size + 15) / 16;
  return (lines | 1) * 16;
}

/// The buffers of a block of `tile_rows` tile rows of g, in output tiles of tile x tile pixels
/// (2 for F(2x2, 3x3), 4 for F(4x4, 3x3)): their widths and strides, for the driver that sizes
/// them and the block functions that fill them alike. Narrow rows count whole vectors: a block's
/// last vector may reach past the image (tile rows that are transformed and multiplied but never
/// stored).
struct BlockLayout {
  std::int64_t tw;                  // tiles per tile row
  std::int64_t rows_per_vector;     // tile rows per vector of tiles
  std::int64_t padded_rows;         // tile rows, a multiple of rows_per_vector
  std::int64_t tiles;               // tiles in the block
  std::int64_t panels;              // panels of Kernel::kNr tiles
  std::int64_t ldm;                 // row length of M_e [c_out][ldm]: whole panels and one vector to spare
  std::int64_t v_stride, m_stride;  // floats between consecutive positions' V and M

  BlockLayout(const ConvGeometry& g, std::int64_t tile_rows, std::int64_t tile = 2)
      : tw((g.w + tile - 1) / tile),
        rows_per_vector(winograd::rows_per_vector(tw)),
        padded_rows((tile_rows + rows_per_vector - 1) / rows_per_vector * rows_per_vector),
        tiles(padded_rows * tw),
        panels((tiles + Kernel::kNr - 1) / Kernel::kNr),
        ldm(panels * Kernel::kNr + kLanes),
        v_stride(position_stride(panels * g.c_in * Kernel::kNr)),
        m_stride(position_stride(g.c_out * ldm)) {}
};

/// M_e = U_e V_e for the `positions` positions of a block (layout), each V panel kept in L1
/// while every U panel runs over it.
inline void multiply_positions(const ConvGeometry& g, std::int64_t positions, const float* packed_u,
                               const BlockLayout& layout, const float* v, float* m) {
  constexpr std::int64_t Mr = Kernel::kMr, Nr = Kernel::kNr;
  const std::int64_t ci_count = g.c_in, co_count = g.c_out, mpanels = (co_count + Mr - 1) / Mr;
  for (std::int64_t e = 0; e < positions; ++e) {
    const float* ue = packed_u + e * mpanels * ci_count * Mr;
    const float* ve = v + e * layout.v_stride;
    float* me = m + e * layout.m_stride;
    for (std::int64_t np = 0; np < layout.panels; ++np)
      for (std::int64_t mp = 0; mp < mpanels; ++mp)
        Kernel::tile(ci_count, ue + mp * ci_count * Mr, std::min(Mr, co_count - mp * Mr), ve + np * ci_count * Nr,
                     std::min(Nr, layout.tiles - np * Nr), 1.0f, 0.0f, me + mp * Mr * layout.ldm + np * Nr, layout.ldm);
  }
}

inline Floats load(const float* p) { return portable::load(p); }
inline Floats even_lanes(Floats a, Floats b) { return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14); }
inline Floats odd_lanes(Floats a, Floats b) { return __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15); }

/// Floats of the transformed weights of g: U_e packed as A panels for each of `positions`
/// positions (16 for F(2x2, 3x3)).
inline std::int64_t transformed_weights_floats(const ConvGeometry& g, std::int64_t positions = kPositions) {
  return positions * (g.c_out + Kernel::kMr - 1) / Kernel::kMr * g.c_in * Kernel::kMr;
}

/// Packs u [positions][c_out][c_in] as the micro-kernel's A panels, position after position:
/// U_e at packed + e * mpanels * c_in * kMr.
inline void pack_positions(const ConvGeometry& g, std::int64_t positions, const float* u, float* packed) {
  const std::int64_t co = g.c_out, ci = g.c_in, mpanels = (co + Kernel::kMr - 1) / Kernel::kMr;
  for (std::int64_t e = 0; e < positions; ++e)
    packed_sgemm::pack_a<Kernel::kMr>(Trans::No, co, ci, u + e * co * ci, ci, packed + e * mpanels * ci * Kernel::kMr,
                                      0, mpanels);
}

/// U_e = (G g G^T)[e] for every kernel g, e = 4 row + column, each U_e [c_out, c_in] packed as the
/// micro-kernel's A panels: packed + e * mpanels * c_in * kMr.
inline void transform_weights(const ConvGeometry& g, const float* weight, float* packed) {
  const std::int64_t co = g.c_out, ci = g.c_in;
  thread_local std::vector<float> u;
  u.resize(static_cast<std::size_t>(kPositions * co * ci));
  for (std::int64_t o = 0; o < co; ++o)
    for (std::int64_t i = 0; i < ci; ++i) {
      const float* k = weight + (o * ci + i) * 9;
      float t[4][3];  // G g: rows of the kernel combined
      for (int c = 0; c < 3; ++c) {
        t[0][c] = k[c];
        t[1][c] = 0.5f * (k[c] + k[3 + c] + k[6 + c]);
        t[2][c] = 0.5f * (k[c] - k[3 + c] + k[6 + c]);
        t[3][c] = k[6 + c];
      }
      for (int r = 0; r < 4; ++r) {  // (G g) G^T
        const float row[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]), 0.5f * (t[r][0] - t[r][1] + t[r][2]),
                              t[r][2]};
        for (int c = 0; c < 4; ++c) u[static_cast<std::size_t>(((4 * r + c) * co + o) * ci + i)] = row[c];
      }
    }
  pack_positions(g, kPositions, u.data(), packed);
}

/// Lanes 0-3 of a, then lanes 0-3 of b: two tile rows of 4 tiles in one vector.
inline Floats side_by_side(Floats a, Floats b) { return __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11); }

/// Floats [s, s + kLanes) of a row of w floats, zeros past its end.
inline Floats row_vector(const float* row, std::int64_t w, std::int64_t s) {
  if (s + kLanes <= w) return load(row + s);
  return s < w ? portable::load_partial(row + s, w - s) : Floats{};
}

/// The columns d0 .. d3 of one row of the 4x4 input windows of the 8 tiles from tile column tj0
/// on: lane l's window is columns 2 (tj0 + l) - 1 .. 2 (tj0 + l) + 2 of `row` (w floats; null for
/// a padding row), zeros outside it. Read straight from the input: the 16 floats from column
/// 2 tj0 on split into even and odd lanes are d1 and d2, and d0 and d3 are those shifted by a
/// lane with the columns either side shifted in. (Copying rows into a zero-bordered buffer and
/// loading the windows from it made every load straddle two of the copy's stores: the loads
/// waited for the stores to reach L1.)
inline void window_columns(const float* row, std::int64_t w, std::int64_t tj0, Floats d[4]) {
  if (!row) {
    d[0] = d[1] = d[2] = d[3] = Floats{};
    return;
  }
  const std::int64_t s = 2 * tj0;
  const Floats v0 = row_vector(row, w, s), v1 = row_vector(row, w, s + kLanes);
  const Floats left = portable::broadcast(s > 0 ? row[s - 1] : 0.0f);
  const Floats right = portable::broadcast(s + 2 * kLanes < w ? row[s + 2 * kLanes] : 0.0f);
  d[1] = even_lanes(v0, v1);
  d[2] = odd_lanes(v0, v1);
  d[0] = __builtin_shufflevector(d[2], left, 8, 0, 1, 2, 3, 4, 5, 6);
  d[3] = __builtin_shufflevector(d[1], right, 1, 2, 3, 4, 5, 6, 7, 8);
}

/// Runs visit(input_row, ci, ti, tj0, lanes, tile) for every input channel ci and every vector of
/// tiles of the block of tile rows [ti0, ti0 + layout.padded_rows) of one sample x: input_row(yi)
/// is row yi of channel ci (null for the padding rows above and below the image), the vector
/// starts at tile column tj0 of tile row ti (two tile rows for narrow rows), `lanes` of its tiles
/// are the row's (all of them for narrow rows) and `tile` is its first column in V.
template <class Visit>
inline void for_each_tile_vector(const ConvGeometry& g, const BlockLayout& layout, const float* x, std::int64_t ti0,
                                 Visit&& visit) {
  const std::int64_t h = g.h, w = g.w, tw = layout.tw, q = layout.rows_per_vector;
  for (std::int64_t ci = 0; ci < g.c_in; ++ci) {
    const float* plane = x + ci * h * w;
    const auto input_row = [plane, h, w](std::int64_t yi) { return yi >= 0 && yi < h ? plane + yi * w : nullptr; };
    for (std::int64_t ti = ti0; ti < ti0 + layout.padded_rows; ti += q)
      for (std::int64_t tj0 = 0; tj0 < tw; tj0 += kLanes)
        visit(input_row, ci, ti, tj0, q > 1 ? kLanes : std::min(kLanes, tw - tj0), (ti - ti0) * tw + tj0);
  }
}

/// Stores one position's transformed values of input channel ci for a vector of tiles into that
/// position's V (panels of Kernel::kNr tiles by c_in channels): lane l to column tile + l, or,
/// for the last `lanes` < kLanes tiles of a row, tile k of the vector, from lane lane_of(k), to
/// column tile + k.
template <class LaneOf>
inline void store_tiles(float* ve, std::int64_t c_in, std::int64_t ci, std::int64_t tile, Floats value,
                        std::int64_t lanes, LaneOf lane_of) {
  constexpr std::int64_t Nr = Kernel::kNr;
  const auto at = [&](std::int64_t column) -> float& { return ve[((column / Nr) * c_in + ci) * Nr + column % Nr]; };
  if (lanes == kLanes) {
    if (tile % kLanes == 0) return portable::store(&at(tile), value);  // 8 floats of one panel row
    for (std::int64_t l = 0; l < kLanes; ++l) at(tile + l) = value[l];
    return;
  }
  for (std::int64_t k = 0; k < lanes; ++k) at(tile + k) = value[lane_of(k)];
}

/// The tiles of tile rows [ti0, ti1) of one sample: input transform into V (panels of 16 tiles per
/// position), the 16 GEMMs into M [16][c_out][ldm], output transform into y with the sample's
/// epilogue terms.
inline void forward_block(const ConvGeometry& g, const float* x, const float* packed_u, std::int64_t ti0,
                          std::int64_t ti1, float* v, float* m, const portable::SampleEpilogue& terms, float* y) {
  const std::int64_t ci_count = g.c_in, co_count = g.c_out, h = g.h, w = g.w;
  const BlockLayout layout(g, ti1 - ti0);
  const std::int64_t tw = layout.tw, q = layout.rows_per_vector;
  const std::int64_t ldm = layout.ldm, v_stride = layout.v_stride, m_stride = layout.m_stride;
  const std::int64_t ti_end = ti0 + layout.padded_rows;  // past ti1 only for narrow rows: never stored
  // Input transform, channel by channel: rows 2 ti0 - 1 .. 2 ti_end of the input.
  for_each_tile_vector(
      g, layout, x, ti0,
      [&](const auto& input_row, std::int64_t ci, std::int64_t ti, std::int64_t tj0, std::int64_t lanes,
          std::int64_t tile) {
        Floats u[4][4];
        for (int r = 0; r < 4; ++r) {
          Floats d[4];
          if (q == 1) {
            window_columns(input_row(2 * ti - 1 + r), w, tj0, d);
          } else {  // two tile rows, each the first 4 lanes of its own split
            Floats first[4], second[4];
            window_columns(input_row(2 * ti - 1 + r), w, 0, first);
            window_columns(input_row(2 * ti + 1 + r), w, 0, second);
            for (int k = 0; k < 4; ++k) d[k] = side_by_side(first[k], second[k]);
          }
          u[r][0] = d[0] - d[2];
          u[r][1] = d[1] + d[2];
          u[r][2] = d[2] - d[1];
          u[r][3] = d[1] - d[3];
        }
        for (int c = 0; c < 4; ++c) {
          const Floats col[4] = {u[0][c] - u[2][c], u[1][c] + u[2][c], u[2][c] - u[1][c], u[1][c] - u[3][c]};
          for (int r = 0; r < 4; ++r)
            store_tiles(v + (4 * r + c) * v_stride, ci_count, ci, tile, col[r], lanes,
                        [](std::int64_t k) { return k; });
        }
      });
  multiply_positions(g, kPositions, packed_u, layout, v, m);
  // Output transform: 8 tiles' 2x2 outputs interleaved into 16 pixels of each of two rows (of
  // q tile rows' output rows for narrow rows).
  const bool with_terms = !terms.empty();
  for (std::int64_t co = 0; co < co_count; ++co) {
    float* plane = y + co * h * w;
    for (std::int64_t ti = ti0; ti < ti_end; ti += q)
      for (std::int64_t tj0 = 0; tj0 < tw; tj0 += kLanes) {
        const std::int64_t t = (ti - ti0) * tw + tj0;
        Floats mv[4][4];
        for (int e = 0; e < 16; ++e) mv[e / 4][e % 4] = load(m + e * m_stride + co * ldm + t);
        Floats wv[2][4];
        for (int c = 0; c < 4; ++c) {
          wv[0][c] = mv[0][c] + mv[1][c] + mv[2][c];
          wv[1][c] = mv[1][c] - mv[2][c] - mv[3][c];
        }
        const std::int64_t pixels = std::min<std::int64_t>(2 * kLanes, w - 2 * tj0);
        for (int r = 0; r < 2; ++r) {
          const Floats y0 = wv[r][0] + wv[r][1] + wv[r][2], y1 = wv[r][1] - wv[r][2] - wv[r][3];
          Floats lo = __builtin_shufflevector(y0, y1, 0, 8, 1, 9, 2, 10, 3, 11);
          Floats hi = __builtin_shufflevector(y0, y1, 4, 12, 5, 13, 6, 14, 7, 15);
          if (q > 1) {  // lo is tile row ti, hi tile row ti + 1: 8 pixels each, w = 7 or 8 of them stored
            const Floats halves[2] = {lo, hi};
            for (std::int64_t s = 0; s < 2 && ti + s < ti1; ++s) {
              const std::int64_t oy = 2 * (ti + s) + r;
              if (oy >= h) break;
              Floats out = halves[s];
              if (with_terms) out = terms.add(out, co, h * w, oy * w, w);
              portable::store(plane + oy * w, out, w);
            }
            continue;
          }
          const std::int64_t oy = 2 * ti + r;
          if (oy >= h) break;
          const std::int64_t p = oy * w + 2 * tj0;
          float* out = plane + p;
          if (pixels == 2 * kLanes) {  // whole vectors: no variable-length copy
            if (with_terms) {
              lo = terms.add(lo, co, h * w, p, kLanes);
              hi = terms.add(hi, co, h * w, p + kLanes, kLanes);
            }
            portable::store(out, lo);
            portable::store(out + kLanes, hi);
            continue;
          }
          const std::int64_t lo_lanes = std::min<std::int64_t>(kLanes, pixels);
          if (with_terms) lo = terms.add(lo, co, h * w, p, lo_lanes);
          portable::store(out, lo, lo_lanes);
          if (pixels > kLanes) {
            if (with_terms) hi = terms.add(hi, co, h * w, p + kLanes, pixels - kLanes);
            portable::store(out + kLanes, hi, pixels - kLanes);
          }
        }
      }
  }
}

/// Runs `block` (the forward_block of a tile size) over every sample of g in blocks of tile rows
/// whose V and M fit the machine's Winograd block (KernelChoices::winograd_block_bytes' default,
/// 384 KiB): samples in parallel, each thread with its own V and M. `tile` is the output tile's
/// side, `positions` = (tile + 2)^2.
template <class Block>
inline void forward_by_blocks(const ConvGeometry& g, std::int64_t tile, std::int64_t positions, const float* x,
                              const float* packed_u, float* y, const ConvEpilogue<float>& epilogue, Block block) {
  const std::int64_t th = (g.h + tile - 1) / tile, tw = (g.w + tile - 1) / tile;
  const std::int64_t tiles_max = std::max<std::int64_t>(1, 384 * 1024 / (positions * 4 * (g.c_in + g.c_out)));
  // Narrow rows: whole vectors of tile rows per block. And whole micro-kernel panels of tiles
  // (panel_rows rows fill them), at least one panel where that is one or two rows of vectors even
  // if V and M then outgrow the budget: a block of half a panel runs the micro-kernel at half
  // width and reads all of U again for every 8 tiles (many channels: 128 at 16x16 took 1.6x the
  // time with F(4x4), 512 at 8x8 1.7x with F(2x2)).
  const std::int64_t q = rows_per_vector(tw);
  std::int64_t block_rows = (std::clamp<std::int64_t>(tiles_max / tw, 1, th) + q - 1) / q * q;
  const std::int64_t panel_rows = std::lcm(q, Kernel::kNr / std::gcd(tw, Kernel::kNr));
  if (block_rows < th) {
    if (block_rows >= panel_rows)
      block_rows = block_rows / panel_rows * panel_rows;
    else if (panel_rows * tw <= 2 * Kernel::kNr)
      block_rows = std::min(th, panel_rows);
  }
  const BlockLayout largest(g, block_rows, tile);  // a last, shorter block needs no more
#pragma omp parallel for schedule(static) if (g.n > 1 && !omp_in_parallel())
  for (std::int64_t i = 0; i < g.n; ++i) {
    thread_local std::vector<float> v_buffer, m_buffer;
    float* v = packed_sgemm::thread_scratch(v_buffer, static_cast<std::size_t>(positions * largest.v_stride));
    float* m = packed_sgemm::thread_scratch(m_buffer, static_cast<std::size_t>(positions * largest.m_stride));
    for (std::int64_t ti0 = 0; ti0 < th; ti0 += block_rows)
      block(g, x + i * g.c_in * g.h * g.w, packed_u, ti0, std::min(th, ti0 + block_rows), v, m,
            portable::SampleEpilogue(epilogue, i, g.c_out, g.h * g.w), y + i * g.c_out * g.h * g.w);
  }
}

}  // namespace winograd

/// y = conv(x, weight) + the epilogue's terms (assigns) by Winograd F(2x2, 3x3), with the weights
/// already transformed (winograd::transform_weights into transformed_weights_floats(g) floats).
/// winograd_forward_applies(g, ...) holds.
inline void conv2d_winograd2_forward_transformed(const ConvGeometry& g, const float* x, const float* packed_u, float* y,
                                                 const ConvEpilogue<float>& epilogue = {}) {
  winograd::forward_by_blocks(g, 2, winograd::kPositions, x, packed_u, y, epilogue, winograd::forward_block);
}

}  // namespace progdiff::backend::cpu::avx2
PROGDIFF_KERNELS_END
#endif

#pragma once
// The steps of Winograd F(2x2, 3x3) on channel-minor (NHWC) data that do not depend on the vector
// unit, shared by the AVX-512 kernels (detail/winograd_avx512.hpp: forward, backward data and
// weight gradient) and the AVX2 weight gradient (detail/winograd_backward_weight_avx2.hpp): the
// input and gradient transforms of a tile, on GCC's generic vectors of `Lanes` floats (one zmm register for 16
// on AVX-512, two ymm on AVX2), and G^T S G, the 3x3 kernel gradient from the sum S over tiles of
// (A dy A^T) . (B^T x B), with
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A = [1 0; 1 1; 1 -1; 0 -1],
//   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
// Vectors go through memory by std::memcpy (plain unaligned loads and stores once compiled) and
// are never passed by value, so a 16-float vector costs no ABI change where AVX-512 is absent.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::winograd_f2 {

/// A vector of Lanes floats. (A struct member: GCC drops vector_size from an alias template.)
template <int Lanes>
struct LaneVector {
  typedef float type __attribute__((vector_size(4 * Lanes)));
};

/// V_e[t, c] = (B^T d B)_e for the 4x4 input tile d whose row r starts at rows[r] (the channels of
/// its first pixel, those of the next pixel cp floats further), Lanes channels at a time over
/// [0, cp). v points at V_0[t, 0]; V_e is `stride` floats further.
template <int Lanes>
inline void transform_input_tile(const float* const rows[4], std::int64_t cp, float* v, std::int64_t stride) {
  using Vec = typename LaneVector<Lanes>::type;
  for (std::int64_t c0 = 0; c0 < cp; c0 += Lanes) {
    Vec d[4][4], t[4][4];
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) std::memcpy(&d[r][c], rows[r] + c * cp + c0, sizeof(Vec));
    for (int c = 0; c < 4; ++c) {
      t[0][c] = d[0][c] - d[2][c];
      t[1][c] = d[1][c] + d[2][c];
      t[2][c] = d[2][c] - d[1][c];
      t[3][c] = d[1][c] - d[3][c];
    }
    for (int r = 0; r < 4; ++r) {
      const Vec out[4] = {t[r][0] - t[r][2], t[r][1] + t[r][2], t[r][2] - t[r][1], t[r][1] - t[r][3]};
      for (int c = 0; c < 4; ++c) std::memcpy(v + (4 * r + c) * stride + c0, &out[c], sizeof(Vec));
    }
  }
}

/// The same for the tile whose top-left pixel's channels are at `window` in a padded NHWC image
/// of rows `row` floats apart.
template <int Lanes>
inline void transform_input_tile(const float* window, std::int64_t row, std::int64_t cp, float* v,
                                 std::int64_t stride) {
  const float* const rows[4] = {window, window + row, window + 2 * row, window + 3 * row};
  transform_input_tile<Lanes>(rows, cp, v, stride);
}

/// Z_e[t, c] = (A g A^T)_e for the 2x2 gradient tile g whose top-left pixel's channels are at
/// `tile` (the next pixel cp floats further, the next row `row` floats further), Lanes channels at
/// a time over [0, cp). z points at Z_0[t, 0]; Z_e is `stride` floats further.
template <int Lanes>
inline void transform_gradient_tile(const float* tile, std::int64_t row, std::int64_t cp, float* z,
                                    std::int64_t stride) {
  using Vec = typename LaneVector<Lanes>::type;
  const Vec zero{};
  for (std::int64_t c0 = 0; c0 < cp; c0 += Lanes) {
    Vec t[4][2];
    for (int c = 0; c < 2; ++c) {
      Vec a, b;
      std::memcpy(&a, tile + c * cp + c0, sizeof(Vec));
      std::memcpy(&b, tile + row + c * cp + c0, sizeof(Vec));
      t[0][c] = a;
      t[1][c] = a + b;
      t[2][c] = a - b;
      t[3][c] = zero - b;
    }
    for (int r = 0; r < 4; ++r) {
      const Vec out[4] = {t[r][0], t[r][0] + t[r][1], t[r][0] - t[r][1], zero - t[r][1]};
      for (int c = 0; c < 4; ++c) std::memcpy(z + (4 * r + c) * stride + c0, &out[c], sizeof(Vec));
    }
  }
}

/// dg = G^T s G, in double: s sums a whole batch's tiles, and its terms may cancel.
inline void kernel_gradient(const double s[4][4], double dg[3][3]) {
  double q[3][4];
  for (int j = 0; j < 4; ++j) {
    q[0][j] = s[0][j] + 0.5 * (s[1][j] + s[2][j]);
    q[1][j] = 0.5 * (s[1][j] - s[2][j]);
    q[2][j] = 0.5 * (s[1][j] + s[2][j]) + s[3][j];
  }
  for (int a = 0; a < 3; ++a) {
    dg[a][0] = q[a][0] + 0.5 * (q[a][1] + q[a][2]);
    dg[a][1] = 0.5 * (q[a][1] - q[a][2]);
    dg[a][2] = 0.5 * (q[a][1] + q[a][2]) + q[a][3];
  }
}

/// The end of a weight gradient, for one row of the threads' sums: each thread's S holds 16
/// positions `stride` floats apart, each [rows][ld]; row `row` of every thread's S is added in
/// double into `sums` (16 x columns doubles of scratch), and each column c's 4x4 sum becomes its
/// kernel gradient, added to the 9 floats at out_of(c). Null entries of `partial` (threads the
/// team did not get) are skipped.
template <class OutOf>
inline void add_kernel_gradients(const std::vector<float*>& partial, std::int64_t stride, std::int64_t row,
                                 std::int64_t ld, std::int64_t columns, double* sums, OutOf&& out_of) {
  std::fill(sums, sums + 16 * columns, 0.0);
  for (const float* part : partial) {
    if (!part) continue;
    for (std::int64_t e = 0; e < 16; ++e) {
      const float* in = part + e * stride + row * ld;
      for (std::int64_t c = 0; c < columns; ++c) sums[e * columns + c] += static_cast<double>(in[c]);
    }
  }
  for (std::int64_t c = 0; c < columns; ++c) {
    double s[4][4], dg[3][3];
    for (int e = 0; e < 16; ++e) s[e / 4][e % 4] = sums[e * columns + c];
    kernel_gradient(s, dg);
    float* out = out_of(c);
    for (int t = 0; t < 9; ++t) out[t] += static_cast<float>(dg[t / 3][t % 3]);
  }
}

}  // namespace progdiff::backend::cpu::winograd_f2
PROGDIFF_KERNELS_END

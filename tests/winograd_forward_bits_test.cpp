// The AVX-512 Winograd F(2x2, 3x3) forward against the same arithmetic in scalar loops: each
// transform, the fused multiply-adds over the input channels in ascending order (the
// micro-kernel's) and the epilogue in the kernel's order, so the two agree bit for bit. This
// pins down the data layouts (the padded input rows built per tile row, the output written
// through small NHWC blocks) on shapes with partial tiles, channel counts that are not multiples
// of 16, several blocks per sample and blocks spanning samples, where a tolerance against the
// double-precision reference (cpu_conv_test.cpp) could hide a misplaced zero or a stale row.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel_support.hpp"
#include "progdiff/backend/conv_epilogue.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/cpu_identity.hpp"

namespace progdiff_tests_winograd_forward_bits {

#if defined(__AVX512F__)
namespace {

using progdiff::ConvGeometry;
using progdiff::backend::Cpu;
namespace avx512 = progdiff::backend::cpu::avx512;

using progdiff::test::cast;
using progdiff::test::uniform;

// y = the Winograd forward of x [n, c_in, h, w] with weights [c_out, c_in, 3, 3] and the
// epilogue, in scalar float with the kernel's operation order.
std::vector<float> scalar_winograd(const ConvGeometry& g, const std::vector<float>& x, const std::vector<float>& w,
                                   const progdiff::ConvEpilogue<float>& epilogue) {
  const std::int64_t cip = (g.c_in + 15) / 16 * 16, tiles_y = (g.h + 1) / 2, tiles_x = (g.w + 1) / 2;
  // U[o][i][e] = G g G^T, zero in the padding channels.
  std::vector<float> u(std::size_t(g.c_out * cip * 16), 0.0f);
  for (std::int64_t o = 0; o < g.c_out; ++o)
    for (std::int64_t i = 0; i < g.c_in; ++i) {
      const float* k = &w[std::size_t((o * g.c_in + i) * 9)];
      float gt[4][3];
      for (int c = 0; c < 3; ++c) {
        const float g0 = k[c], g1 = k[3 + c], g2 = k[6 + c];
        gt[0][c] = g0;
        gt[1][c] = 0.5f * (g0 + g1 + g2);
        gt[2][c] = 0.5f * (g0 - g1 + g2);
        gt[3][c] = g2;
      }
      float* ue = &u[std::size_t((o * cip + i) * 16)];
      for (int r = 0; r < 4; ++r) {
        ue[4 * r + 0] = gt[r][0];
        ue[4 * r + 1] = 0.5f * (gt[r][0] + gt[r][1] + gt[r][2]);
        ue[4 * r + 2] = 0.5f * (gt[r][0] - gt[r][1] + gt[r][2]);
        ue[4 * r + 3] = gt[r][2];
      }
    }
  std::vector<float> y(std::size_t(g.n * g.c_out * g.h * g.w));
  std::vector<float> v(std::size_t(cip * 16));
  for (std::int64_t s = 0; s < g.n; ++s)
    for (std::int64_t ty = 0; ty < tiles_y; ++ty)
      for (std::int64_t tx = 0; tx < tiles_x; ++tx) {
        // V[i][e] = B^T d B of the 4x4 input tile at (2 ty - 1, 2 tx - 1), zero outside the image.
        for (std::int64_t i = 0; i < cip; ++i) {
          float d[4][4], t[4][4];
          for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 4; ++c) {
              const std::int64_t yy = 2 * ty - 1 + r, xx = 2 * tx - 1 + c;
              d[r][c] = i < g.c_in && yy >= 0 && yy < g.h && xx >= 0 && xx < g.w
                            ? x[std::size_t(((s * g.c_in + i) * g.h + yy) * g.w + xx)]
                            : 0.0f;
            }
          for (int c = 0; c < 4; ++c) {
            t[0][c] = d[0][c] - d[2][c];
            t[1][c] = d[1][c] + d[2][c];
            t[2][c] = d[2][c] - d[1][c];
            t[3][c] = d[1][c] - d[3][c];
          }
          float* ve = &v[std::size_t(i * 16)];
          for (int r = 0; r < 4; ++r) {
            ve[4 * r + 0] = t[r][0] - t[r][2];
            ve[4 * r + 1] = t[r][1] + t[r][2];
            ve[4 * r + 2] = t[r][2] - t[r][1];
            ve[4 * r + 3] = t[r][1] - t[r][3];
          }
        }
        for (std::int64_t o = 0; o < g.c_out; ++o) {
          float m[16];
          for (int e = 0; e < 16; ++e) {
            float acc = 0.0f;
            for (std::int64_t i = 0; i < cip; ++i)
              acc = std::fma(v[std::size_t(i * 16 + e)], u[std::size_t((o * cip + i) * 16 + e)], acc);
            m[e] = acc;
          }
          float bias = 0.0f;
          if (epilogue.sample_bias)
            bias = epilogue.sample_bias[s * g.c_out + o] + (epilogue.bias ? epilogue.bias[o] : 0.0f);
          else if (epilogue.bias)
            bias = epilogue.bias[o];
          float sr[2][4];
          for (int c = 0; c < 4; ++c) {
            sr[0][c] = m[c] + m[4 + c] + m[8 + c];
            sr[1][c] = m[4 + c] - m[8 + c] - m[12 + c];
          }
          for (int r = 0; r < 2; ++r) {
            const float out[2] = {sr[r][0] + sr[r][1] + sr[r][2] + bias, sr[r][1] - sr[r][2] - sr[r][3] + bias};
            for (int c = 0; c < 2; ++c) {
              const std::int64_t yy = 2 * ty + r, xx = 2 * tx + c;
              if (yy >= g.h || xx >= g.w) continue;
              const std::size_t at = std::size_t(((s * g.c_out + o) * g.h + yy) * g.w + xx);
              y[at] = epilogue.residual ? out[c] + epilogue.residual[at] : out[c];
            }
          }
        }
      }
  return y;
}

}  // namespace

TEST_CASE("The Winograd forward is the scalar F(2x2, 3x3) arithmetic bit for bit") {
  const ConvGeometry cases[] = {
      {1, 16, 1, 1, 16, 3, 3, 1, 1},    // a 1x1 image: one tile, mostly padding
      {2, 17, 7, 9, 18, 3, 3, 1, 1},    // odd sizes: the last tile row and column half outside
      {1, 20, 5, 30, 80, 3, 3, 1, 1},   // two c_out panels, rows of 30: 8 + 7 tiles, a partial store
      {3, 33, 16, 16, 20, 3, 3, 1, 1},  // batch 3: tile rows reuse input rows, blocks span samples
      {2, 24, 6, 34, 16, 3, 3, 1, 1},   // 17 tiles a row: output blocks of 8, 8 and 1 tiles
      {16, 64, 8, 8, 64, 3, 3, 1, 1},   // the default U-Net's 8x8 layers
  };
  for (const ConvGeometry& g : cases) {
    INFO("n=", g.n, " c_in=", g.c_in, " h=", g.h, " w=", g.w, " c_out=", g.c_out);
    REQUIRE(avx512::winograd_applies(g));
    const std::size_t x_size = std::size_t(g.n * g.c_in * g.h * g.w), y_size = std::size_t(g.n * g.c_out * g.h * g.w);
    const auto x = cast<float>(uniform(x_size, 51)), w = cast<float>(uniform(std::size_t(g.c_out * g.patch()), 52)),
               bias = cast<float>(uniform(std::size_t(g.c_out), 53)),
               sample_bias = cast<float>(uniform(std::size_t(g.n * g.c_out), 54)),
               residual = cast<float>(uniform(y_size, 55));
    const progdiff::ConvEpilogue<float> epilogues[] = {
        {}, {bias.data()}, {bias.data(), sample_bias.data(), residual.data()}, {nullptr, nullptr, residual.data()}};
    for (const auto& epilogue : epilogues) {
      INFO("bias ", epilogue.bias != nullptr, " sample bias ", epilogue.sample_bias != nullptr, " residual ",
           epilogue.residual != nullptr);
      const std::vector<float> want = scalar_winograd(g, x, w, epilogue);
      // Blocks of the fewest tiles (12: a block may start inside a sample, and its first
      // tile row has no input rows from the one before) and the built-in block size.
      for (const std::int64_t block_bytes : {std::int64_t(4096), std::int64_t(0)}) {
        INFO("block_bytes ", block_bytes);
        std::vector<float> got(y_size, NAN);
        avx512::conv2d_winograd(g, x.data(), Cpu::forward_taps(g, w.data()), epilogue, got.data(), block_bytes);
        std::size_t differing = 0;
        for (std::size_t i = 0; i < y_size; ++i) differing += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
        CHECK(differing == 0);
      }
    }
  }
}
#else
// Without AVX-512 the kernels above are not compiled; ctest reports this file as skipped (the
// marker below), after checking that the build does not leave out a CPU that has AVX-512
// (the tests build for the machine they run on, -march=native).
TEST_CASE("The Winograd kernels are left out only where the CPU lacks AVX-512") {
  CHECK_FALSE(progdiff::backend::cpu::identify_cpu().avx512f);
  MESSAGE("PROGDIFF_SKIPPED: the AVX-512 Winograd kernels are not compiled for this CPU");
}
#endif

}  // namespace progdiff_tests_winograd_forward_bits

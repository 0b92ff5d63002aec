// The CPU back end's convolution kernels (Winograd F(2x2, 3x3) and implicit GEMM on AVX-512 or
// AVX2 for float where compiled, im2col + GEMM otherwise) against the plain-loop reference
// evaluated in double.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernel_support.hpp"
#include "progdiff/backend/conv_epilogue.hpp"
#include "progdiff/backend/cpu/conv_reference.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/detail/winograd_f2_transforms.hpp"

namespace progdiff_tests_cpu_conv {

namespace {

using progdiff::ConvGeometry;
using progdiff::backend::Cpu;
namespace reference = progdiff::backend::cpu::reference;

using progdiff::test::cast;
using progdiff::test::uniform;

template <class T>
double worst_error(const std::vector<T>& got, const std::vector<double>& want) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double(got[i]) - want[i]);
    worst = std::isnan(err) ? INFINITY : std::max(worst, err);
  }
  return worst;
}

// Sums of `terms` products of numbers in [-1, 1].
template <class T>
double tolerance(std::int64_t terms) {
  return std::is_same_v<T, float> ? 1e-5 + 3e-7 * double(terms) : 1e-12 + 1e-15 * double(terms);
}

// The bound for what Cpu's convolutions run: on AVX2 without AVX-512 a 3x3 "same" float
// convolution may run Winograd F(4x4, 3x3), whose transforms round up to about 1.4 times
// tolerance<float> (the AVX2 Winograd case below); every other kernel stays within tolerance.
template <class T>
double conv_tolerance(std::int64_t terms) {
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) return 4 * tolerance<T>(terms);
#endif
  return tolerance<T>(terms);
}

// y[n, c, p] + bias[c] + sample_bias[n, c] + residual[n, c, p], in double; an empty vector adds nothing.
std::vector<double> with_epilogue(const ConvGeometry& g, std::vector<double> y, const std::vector<double>& bias,
                                  const std::vector<double>& sample_bias, const std::vector<double>& residual) {
  const std::size_t hw = std::size_t(g.out_hw()), c_out = std::size_t(g.c_out);
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (!bias.empty()) y[i] += bias[(i / hw) % c_out];
    if (!sample_bias.empty()) y[i] += sample_bias[i / hw];
    if (!residual.empty()) y[i] += residual[i];
  }
  return y;
}

// The inputs of a fused-epilogue check of geometry g, drawn from seeds seed .. seed + 4, and
// its variants: every term, the bias alone (where `bias_alone`), the per-sample bias alone and
// the residual alone, each with its double reference. Not copied or moved: the variants point
// into its vectors.
class EpilogueCase {
 public:
  struct Variant {
    const char* name;
    progdiff::ConvEpilogue<float> epilogue;
    std::vector<double> want;
  };

  EpilogueCase(const ConvGeometry& g, std::uint32_t seed, bool bias_alone) {
    const std::size_t x_size = std::size_t(g.n * g.c_in * g.h * g.w), y_size = std::size_t(g.n * g.c_out * g.out_hw());
    const auto xd = uniform(x_size, seed), wd = uniform(std::size_t(g.c_out * g.patch()), seed + 1),
               bias = uniform(std::size_t(g.c_out), seed + 2),
               sample_bias = uniform(std::size_t(g.n * g.c_out), seed + 3), residual = uniform(y_size, seed + 4);
    std::vector<double> conv(y_size);
    reference::conv2d_forward<double>(g, xd.data(), wd.data(), conv.data());
    x = cast<float>(xd), w = cast<float>(wd), b = cast<float>(bias), s = cast<float>(sample_bias),
    r = cast<float>(residual);
    variants.push_back({"all", {b.data(), s.data(), r.data()}, with_epilogue(g, conv, bias, sample_bias, residual)});
    if (bias_alone) variants.push_back({"bias", {b.data(), nullptr, nullptr}, with_epilogue(g, conv, bias, {}, {})});
    variants.push_back({"sample bias", {nullptr, s.data(), nullptr}, with_epilogue(g, conv, {}, sample_bias, {})});
    variants.push_back({"residual", {nullptr, nullptr, r.data()}, with_epilogue(g, conv, {}, {}, residual)});
  }
  EpilogueCase(const EpilogueCase&) = delete;
  EpilogueCase& operator=(const EpilogueCase&) = delete;

  std::vector<float> x, w;  // the convolution's input and weights
  std::vector<Variant> variants;

 private:
  std::vector<float> b, s, r;  // the terms the variants point to
};

template <class T>
void check_conv(const ConvGeometry& g) {
  INFO("n=", g.n, " c_in=", g.c_in, " h=", g.h, " w=", g.w, " c_out=", g.c_out, " k=", g.kh, "x", g.kw,
       " stride=", g.stride, " pad=", g.pad);
  const std::size_t x_size = std::size_t(g.n * g.c_in * g.h * g.w), y_size = std::size_t(g.n * g.c_out * g.out_hw()),
                    w_size = std::size_t(g.c_out * g.patch());
  const auto x = uniform(x_size, 11), w = uniform(w_size, 12), dy = uniform(y_size, 13), dw0 = uniform(w_size, 14);
  const auto xt = cast<T>(x), wt = cast<T>(w), dyt = cast<T>(dy);

  std::vector<double> y_ref(y_size);
  reference::conv2d_forward<double>(g, x.data(), w.data(), y_ref.data());
  std::vector<T> y(y_size, T(NAN));  // the kernels assign: stale contents must not matter
  Cpu::conv2d_forward<T>(g, xt.data(), wt.data(), y.data());
  CHECK(worst_error(y, y_ref) <= conv_tolerance<T>(g.patch()));

  // With the bias fused (the direct kernel starts each sum from it; other paths add it after).
  const auto bias = uniform(std::size_t(g.c_out), 15);
  std::vector<double> yb_ref = y_ref;
  for (std::size_t i = 0; i < y_size; ++i) yb_ref[i] += bias[(i / std::size_t(g.out_hw())) % std::size_t(g.c_out)];
  const auto biast = cast<T>(bias);
  std::fill(y.begin(), y.end(), T(NAN));
  Cpu::conv2d_forward_bias<T>(g, xt.data(), wt.data(), biast.data(), y.data());
  CHECK(worst_error(y, yb_ref) <= conv_tolerance<T>(g.patch() + 1));

  // With the whole epilogue: bias, a per-sample bias and a residual, added as y is stored.
  const auto sample_bias = uniform(std::size_t(g.n * g.c_out), 16), residual = uniform(y_size, 17);
  std::vector<double> ye_ref = with_epilogue(g, y_ref, bias, sample_bias, residual);
  const auto sample_biast = cast<T>(sample_bias), residualt = cast<T>(residual);
  std::fill(y.begin(), y.end(), T(NAN));
  Cpu::conv2d_forward_epilogue<T>(g, xt.data(), wt.data(),
                                  progdiff::ConvEpilogue<T>{biast.data(), sample_biast.data(), residualt.data()},
                                  y.data());
  CHECK(worst_error(y, ye_ref) <= conv_tolerance<T>(g.patch() + 3));

  std::vector<double> dx_ref(x_size);
  reference::conv2d_backward_data<double>(g, dy.data(), w.data(), dx_ref.data());
  std::vector<T> dx(x_size, T(NAN));
  Cpu::conv2d_backward_data<T>(g, dyt.data(), wt.data(), dx.data());
  CHECK(worst_error(dx, dx_ref) <= conv_tolerance<T>(g.c_out * g.kh * g.kw));

  // backward weight accumulates into what is there.
  std::vector<double> dw_ref = dw0;
  reference::conv2d_backward_weight<double>(g, x.data(), dy.data(), dw_ref.data());
  std::vector<T> dw = cast<T>(dw0);
  Cpu::conv2d_backward_weight<T>(g, xt.data(), dyt.data(), dw.data());
  CHECK(worst_error(dw, dw_ref) <= tolerance<T>(g.n * g.out_hw()));

  // The portable im2col + Eigen path, which is what runs without AVX-512.
  using progdiff::backend::cpu::EigenGemm;
  std::fill(y.begin(), y.end(), T(NAN));
  Cpu::im2col_forward<T, EigenGemm>(g, xt.data(), wt.data(), y.data());
  CHECK(worst_error(y, y_ref) <= tolerance<T>(g.patch()));
  std::fill(dx.begin(), dx.end(), T(NAN));
  Cpu::im2col_backward_data<T, EigenGemm>(g, dyt.data(), wt.data(), dx.data());
  CHECK(worst_error(dx, dx_ref) <= conv_tolerance<T>(g.c_out * g.kh * g.kw));
  dw = cast<T>(dw0);
  Cpu::im2col_backward_weight<T, EigenGemm>(g, xt.data(), dyt.data(), dw.data());
  CHECK(worst_error(dw, dw_ref) <= tolerance<T>(g.n * g.out_hw()));
}

}  // namespace

TEST_CASE_TEMPLATE("Cpu convolution forward and backward match plain loops", T, float, double) {
  // {n, c_in, h, w, c_out, kh, kw, stride, pad}
  const ConvGeometry cases[] = {
      {2, 3, 5, 5, 7, 3, 3, 1, 1},      // 3x3 pad 1, odd channels
      {2, 33, 7, 7, 129, 1, 1, 1, 0},   // 1x1
      {2, 5, 9, 6, 6, 3, 3, 2, 1},      // 3x3 stride 2, non-square
      {1, 4, 7, 11, 5, 3, 3, 1, 0},     // no padding, batch 1
      {3, 64, 12, 10, 70, 3, 3, 1, 1},  // several k blocks, partial tiles in m and n
      {1, 4, 40, 40, 8, 3, 3, 1, 1},    // many pixel chunks in one sample
      {2, 3, 8, 8, 4, 5, 5, 1, 2},      // 5x5
      {2, 3, 6, 5, 4, 3, 3, 1, 2},      // padding larger than k-1
      {2, 3, 6, 7, 5, 3, 1, 1, 1},      // non-square kernel
      {2, 6, 7, 7, 3, 2, 2, 2, 0},      // 2x2 stride 2 (a down-sampler)
      {2, 3, 6, 32, 4, 3, 3, 1, 1},     // whole 32-pixel rows per panel (vector im2col)
      {2, 3, 33, 34, 5, 3, 3, 2, 1},    // stride 2, 17 output columns: two vectors per row
      {2, 3, 32, 32, 4, 3, 3, 2, 1},    // the U-Net down-sampler's geometry
      {1, 1, 1, 1, 1, 1, 1, 1, 0},      // everything 1
      {5, 17, 8, 8, 13, 3, 3, 1, 1},    // 8x8: two rows per vector, chunks spanning samples
      {3, 5, 4, 4, 7, 3, 3, 1, 1},      // 4x4: four rows per vector, partial pixel panels
      {2, 3, 2, 2, 5, 3, 3, 1, 1},      // 2x2: the vertical padding masks whole rows
      {1, 6, 8, 8, 3, 3, 3, 1, 0},      // 8x8 unpadded: rows narrower than the input
      {2, 3, 3, 8, 5, 3, 3, 1, 1},      // 8-wide rows, 24 pixels: not whole vectors
      {2, 19, 16, 16, 21, 3, 3, 1, 1},  // 16x16, channels not multiples of 16
      {1, 7, 16, 48, 9, 3, 3, 1, 1},    // 48-wide rows: panels start inside a row
      {2, 40, 8, 8, 45, 3, 3, 1, 1},    // direct path: two input-channel blocks each way
      {2, 35, 8, 16, 3, 1, 1, 1, 0},    // direct path, 1x1: B read in place
      {1, 3, 4, 16, 2, 5, 5, 1, 2},     // direct path, 5x5 on a 4-row image
      {10, 3, 8, 8, 70, 3, 3, 1, 1},    // backward weight: a group of 8 samples and one of 2
      {2, 32, 16, 16, 32, 3, 3, 1, 1},  // 32 channels: a 2-row last weight panel, half-wide dW tiles
      {2, 8, 8, 8, 20, 3, 3, 1, 1},     // 20 channels: 2 rows left over, dW tiles of 1.25 vectors
      {2, 17, 7, 9, 18, 3, 3, 1, 1},    // Winograd: odd sizes, the last tile row and column half outside
      {1, 16, 1, 1, 16, 3, 3, 1, 1},    // Winograd: a 1x1 image, one tile mostly padding
      {2, 24, 5, 30, 80, 3, 3, 1, 1},   // Winograd: two c_out panels, rows of 30 (a partial 16-pixel store)
      {3, 130, 6, 8, 20, 3, 3, 1, 1},   // Winograd: 144 padded input channels, 20 outputs (backward: 130)
      {2, 256, 4, 4, 64, 3, 3, 1, 1},   // Winograd: deep and small, one tile row per block
      {2, 48, 8, 8, 50, 3, 3, 1, 1},    // Winograd forward where the direct kernel would apply too
  };
  for (const auto& g : cases) check_conv<T>(g);
}

namespace winograd_f2_case {

// B^T, A and G of F(2x2, 3x3) as matrices, for the transforms computed the long way in double.
constexpr double kBt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr double kA[4][2] = {{1, 0}, {1, 1}, {1, -1}, {0, -1}};
constexpr double kG[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

// The input and gradient transforms at a vector width of Lanes floats, against B^T d B and
// A g A^T as matrix products, on 3 vectors of channels in padded NHWC rows.
template <int Lanes>
void check_tile_transforms() {
  namespace wf2 = progdiff::backend::cpu::winograd_f2;
  const std::int64_t cp = 3 * Lanes, row = 6 * cp, stride = cp + 5;  // rows of 6 pixels; odd position stride
  const auto image = uniform(std::size_t(4 * row), 51);
  const auto image_f = cast<float>(image);
  std::vector<float> v(std::size_t(16 * stride), NAN), z(std::size_t(16 * stride), NAN);
  wf2::transform_input_tile<Lanes>(image_f.data() + cp, row, cp, v.data(), stride);  // window from pixel 1
  wf2::transform_gradient_tile<Lanes>(image_f.data() + 2 * cp, row, cp, z.data(), stride);
  double worst_v = 0, worst_z = 0;
  for (std::int64_t c = 0; c < cp; ++c)
    for (int e = 0; e < 16; ++e) {
      const int i = e / 4, j = e % 4;
      double want_v = 0, want_z = 0;
      for (int r = 0; r < 4; ++r)
        for (int q = 0; q < 4; ++q) want_v += kBt[i][r] * image[std::size_t(r * row + (1 + q) * cp + c)] * kBt[j][q];
      for (int r = 0; r < 2; ++r)
        for (int q = 0; q < 2; ++q) want_z += kA[i][r] * image[std::size_t(r * row + (2 + q) * cp + c)] * kA[j][q];
      worst_v = std::max(worst_v, std::fabs(v[std::size_t(e * stride + c)] - want_v));
      worst_z = std::max(worst_z, std::fabs(z[std::size_t(e * stride + c)] - want_z));
    }
  // Sums of up to 16 inputs in [-1, 1], a few roundings each.
  CHECK(worst_v <= 1e-5);
  CHECK(worst_z <= 1e-5);
}

}  // namespace winograd_f2_case

TEST_CASE("The F(2x2, 3x3) weight gradient's transforms match the matrix products, at 8 and 16 lanes") {
  // Both widths run on any CPU (GCC's generic vectors), so the AVX-512 kernels' transforms are
  // checked here too.
  winograd_f2_case::check_tile_transforms<8>();
  winograd_f2_case::check_tile_transforms<16>();

  const auto s_values = uniform(16, 52);
  double s[4][4], dg[3][3];
  for (int e = 0; e < 16; ++e) s[e / 4][e % 4] = s_values[std::size_t(e)];
  progdiff::backend::cpu::winograd_f2::kernel_gradient(s, dg);
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) {
      double want = 0;  // (G^T s G)[a][b]
      for (int p = 0; p < 4; ++p)
        for (int q = 0; q < 4; ++q) want += winograd_f2_case::kG[p][a] * s[p][q] * winograd_f2_case::kG[q][b];
      CHECK(dg[a][b] == doctest::Approx(want).epsilon(1e-14));
    }
}

TEST_CASE_TEMPLATE("Cpu channel bias gradient (the convolution's dbias) matches a double sum", T, float, double) {
  // hw = 600: two full 256-element blocks and a partial one per row.
  const std::int64_t n = 3, c = 5, hw = 600;
  const auto dy = uniform(std::size_t(n * c * hw), 21), db0 = uniform(std::size_t(c), 22);
  std::vector<double> want = db0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < c; ++j)
      for (std::int64_t k = 0; k < hw; ++k) want[std::size_t(j)] += dy[std::size_t((i * c + j) * hw + k)];
  const auto dyt = cast<T>(dy);
  std::vector<T> db = cast<T>(db0);  // accumulates into what is there
  Cpu::channel_bias_grad<T>(n, c, hw, dyt.data(), db.data());
  CHECK(worst_error(db, want) <= tolerance<T>(n * hw));
}

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
TEST_CASE(
    "The AVX2 Winograd forwards, F(2x2) and F(4x4), match plain loops in double, odd sizes, narrow rows and several "
    "blocks included") {
  namespace avx2 = progdiff::backend::cpu::avx2;
  // {n, c_in, h, w, c_out, 3, 3, 1, 1}
  const ConvGeometry cases[] = {
      {2, 16, 16, 16, 16, 3, 3, 1, 1},   // 8 tiles per row: one vector of tiles per tile row
      {1, 20, 17, 33, 24, 3, 3, 1, 1},   // odd sizes: the last tile row and column half outside
      {3, 17, 31, 18, 7, 3, 3, 1, 1},    // a partial vector of tiles, c_out below one A panel
      {2, 64, 32, 32, 64, 3, 3, 1, 1},   // the main job's 64-channel level: two tile rows per block
      {1, 160, 40, 40, 96, 3, 3, 1, 1},  // deep: one tile row per block, many blocks
      {2, 1, 16, 16, 1, 3, 3, 1, 1},     // one channel each way
      {2, 64, 8, 8, 64, 3, 3, 1, 1},     // rows of 4 tiles: two tile rows per vector
      {3, 17, 7, 7, 18, 3, 3, 1, 1},     // ... odd: the last tile row and column half outside
      {2, 20, 5, 8, 24, 3, 3, 1, 1},     // ... 3 tile rows: the last vector reaches past the image
      {1, 400, 8, 8, 300, 3, 3, 1, 1},   // rows of 4 tiles, two blocks of 2 tile rows
      {1, 600, 14, 7, 40, 3, 3, 1, 1},   // blocks of 2 tile rows, the last of 1 (half a vector)
      {2, 64, 16, 16, 64, 3, 3, 1, 1},   // F(4x4): rows of 4 tiles, two tile rows per vector
      {1, 9, 13, 13, 11, 3, 3, 1, 1},    // ... odd: the last tile row and column 1 pixel wide
      {1, 24, 30, 36, 20, 3, 3, 1, 1},   // F(4x4): rows of 9 tiles, a partial vector, 8 tile rows
      {1, 300, 33, 32, 70, 3, 3, 1, 1},  // F(4x4): blocks of 2 tile rows, the last tile row 1 pixel
  };
  for (const ConvGeometry& g : cases) {
    INFO("n=", g.n, " c_in=", g.c_in, " h=", g.h, " w=", g.w, " c_out=", g.c_out);
    REQUIRE(avx2::winograd_takes(g, 1, 4));
    const auto x = uniform(std::size_t(g.n * g.c_in * g.h * g.w), 21),
               w = uniform(std::size_t(g.c_out * g.patch()), 22);
    std::vector<double> want(std::size_t(g.n * g.c_out * g.out_hw()));
    reference::conv2d_forward<double>(g, x.data(), w.data(), want.data());
    const auto xf = cast<float>(x), wf = cast<float>(w);
    for (const std::int64_t tile : {2, 4}) {
      if (!avx2::winograd_takes(g, 1, tile) || avx2::winograd_tile(g, tile) != tile) continue;  // not this tile's
      INFO("tile ", tile);
      std::vector<float> y(want.size(), NAN);  // assigns: stale contents must not matter
      avx2::conv2d_winograd_forward(g, tile, xf.data(), wf.data(), y.data());
      // F(2x2)'s transforms add a few roundings per product (coefficients 1 and 1/2); F(4x4)'s
      // coefficients (up to 8 in A^T, 5 in B^T, 1/24 in G) amplify them: here up to 1.4 times
      // tolerance<float>, about 20 times F(2x2)'s worst.
      CHECK(worst_error(y, want) <= 4 * tolerance<float>(g.patch()));
    }
  }
  CHECK(avx2::winograd4::applies({1, 16, 9, 13, 16, 3, 3, 1, 1}));         // rows of 4 tiles (the last 1 pixel)
  CHECK(avx2::winograd4::applies({1, 16, 5, 29, 16, 3, 3, 1, 1}));         // rows of 8 tiles
  CHECK_FALSE(avx2::winograd4::applies({1, 16, 8, 8, 16, 3, 3, 1, 1}));    // rows of 2 tiles: F(2x2)
  CHECK_FALSE(avx2::winograd4::applies({1, 16, 24, 24, 16, 3, 3, 1, 1}));  // rows of 6 tiles: F(2x2)
  CHECK(avx2::winograd_tile({1, 16, 32, 32, 16, 3, 3, 1, 1}, 4) == 4);
  CHECK(avx2::winograd_tile({1, 16, 32, 32, 16, 3, 3, 1, 1}, 2) == 2);  // the choices' largest tile
  CHECK(avx2::winograd_tile({1, 16, 8, 8, 16, 3, 3, 1, 1}, 4) == 2);
  CHECK(avx2::winograd_takes({1, 16, 9, 13, 16, 3, 3, 1, 1}, 1, 4));  // rows of 13: F(4x4) alone
  CHECK_FALSE(avx2::winograd_takes({1, 16, 9, 13, 16, 3, 3, 1, 1}, 1, 2));
  CHECK_FALSE(avx2::winograd_takes({1, 16, 9, 13, 16, 3, 3, 1, 1}, 17, 4));
  CHECK_FALSE(avx2::winograd_forward_applies({1, 16, 8, 8, 16, 3, 3, 2, 1}, 1));   // stride 2
  CHECK_FALSE(avx2::winograd_forward_applies({1, 16, 8, 14, 16, 3, 3, 1, 1}, 1));  // rows of 7 tiles
  CHECK_FALSE(avx2::winograd_forward_applies({1, 16, 8, 6, 16, 3, 3, 1, 1}, 1));   // rows of 3 tiles
  CHECK_FALSE(avx2::winograd_forward_applies({1, 16, 8, 4, 16, 3, 3, 1, 1}, 1));   // rows of 2 tiles
  CHECK_FALSE(avx2::winograd_forward_applies({1, 8, 16, 16, 16, 3, 3, 1, 1}, 16));
}

TEST_CASE("The AVX2 weight gradients, Winograd F(2x2) and implicit GEMM, each match plain loops in double") {
  namespace avx2 = progdiff::backend::cpu::avx2;
  // {n, c_in, h, w, c_out, 3, 3, 1, 1}; the dispatcher sends those of 16 or more channels a side to Winograd.
  const ConvGeometry cases[] = {
      {3, 64, 12, 10, 70, 3, 3, 1, 1},  // 70 output channels: a last A panel of 4 rows
      {2, 17, 7, 9, 18, 3, 3, 1, 1},    // odd sizes: the last tile row and column half outside; channels padded to 24
      {1, 16, 1, 1, 16, 3, 3, 1, 1},    // a 1x1 image: one tile, mostly padding
      {3, 130, 6, 8, 20, 3, 3, 1, 1},   // 136 padded input channels, the last V vector 2 channels wide
      {9, 20, 33, 31, 23, 3, 3, 1, 1},  // many chunks of tile rows, some spanning two samples
      {6, 32, 8, 8, 24, 3, 3, 1, 1},    // 8x8: chunks of whole samples
      {2, 256, 4, 4, 64, 3, 3, 1, 1},   // deep and small
      {2, 8, 8, 8, 20, 3, 3, 1, 1},     // 8 input channels: the implicit GEMM alone
  };
  for (const ConvGeometry& g : cases) {
    INFO("n=", g.n, " c_in=", g.c_in, " h=", g.h, " w=", g.w, " c_out=", g.c_out);
    const std::size_t w_size = std::size_t(g.c_out * g.patch());
    const auto x = uniform(std::size_t(g.n * g.c_in * g.h * g.w), 41),
               dy = uniform(std::size_t(g.n * g.c_out * g.out_hw()), 42), dw0 = uniform(w_size, 43);
    std::vector<double> want = dw0;  // both accumulate into what is there
    reference::conv2d_backward_weight<double>(g, x.data(), dy.data(), want.data());
    const auto xf = cast<float>(x), dyf = cast<float>(dy);
    std::vector<float> implicit = cast<float>(dw0);
    avx2::conv2d_backward_weight_implicit(g, xf.data(), dyf.data(), implicit.data());
    CHECK(worst_error(implicit, want) <= tolerance<float>(g.n * g.out_hw()));
    if (!avx2::winograd_backward_weight_applies(g, 16)) continue;
    std::vector<float> winograd = cast<float>(dw0);
    avx2::conv2d_winograd_backward_weight(g, xf.data(), dyf.data(), winograd.data());
    // The transforms' coefficients are 1 and 1/2, and G^T S G runs in double: as close as the
    // implicit GEMM (measured: 0.5-1x its worst error on these cases).
    CHECK(worst_error(winograd, want) <= tolerance<float>(g.n * g.out_hw()));
  }
  CHECK_FALSE(avx2::winograd_backward_weight_applies({1, 16, 8, 8, 16, 3, 3, 2, 1}, 16));  // stride 2
  CHECK_FALSE(avx2::winograd_backward_weight_applies({1, 16, 8, 8, 16, 3, 3, 1, 0}, 16));  // no padding
  CHECK_FALSE(avx2::winograd_backward_weight_applies({1, 16, 8, 8, 16, 1, 1, 1, 0}, 16));  // 1x1
  CHECK_FALSE(avx2::winograd_backward_weight_applies({1, 8, 8, 8, 16, 3, 3, 1, 1}, 16));   // 8 input channels
}

TEST_CASE("The AVX2 forward kernels add a bias, a per-sample bias and a residual as they store the output") {
  namespace avx2 = progdiff::backend::cpu::avx2;
  using progdiff::backend::cpu::Elementwise;
  // Odd sizes leave partial vectors of tiles and pixels; several samples change the per-sample
  // bias between blocks.
  const ConvGeometry cases[] = {{3, 16, 16, 16, 16, 3, 3, 1, 1},  // both kernels, whole vectors
                                {2, 17, 9, 18, 18, 3, 3, 1, 1},   // both kernels, 9 tiles a row
                                {2, 20, 17, 33, 7, 3, 3, 1, 1},   // both kernels, odd rows and columns
                                {3, 16, 8, 8, 16, 3, 3, 1, 1},    // both, two tile rows per vector
                                {2, 9, 5, 7, 11, 3, 3, 1, 1},     // both, a vector reaching past the image
                                {2, 16, 8, 12, 16, 3, 3, 1, 1},   // implicit GEMM only (rows of 6 tiles)
                                {3, 12, 13, 15, 10, 3, 3, 1, 1},  // all three, F(4x4) two tile rows a vector
                                {2, 7, 9, 37, 9, 3, 3, 1, 1},     // all three, F(4x4) rows of 10 tiles
                                {2, 5, 9, 6, 6, 3, 3, 2, 1}};     // implicit GEMM only (stride 2)
  for (const ConvGeometry& g : cases) {
    INFO("n=", g.n, " c_in=", g.c_in, " h=", g.h, " w=", g.w, " c_out=", g.c_out, " stride=", g.stride);
    const std::size_t y_size = std::size_t(g.n * g.c_out * g.out_hw());
    const EpilogueCase data(g, 51, true);
    // Each kernel: the fused terms against the double reference, and bit for bit against the
    // kernel without them followed by the layers' separate passes, which fusing must not change.
    const auto check = [&](const char* kernel, const EpilogueCase::Variant& v, auto&& run) {
      INFO("kernel: ", kernel, ", epilogue: ", v.name);
      std::vector<float> fused(y_size, NAN), separate(y_size, NAN);
      run(v.epilogue, fused.data());
      CHECK(worst_error(fused, v.want) <= 4 * tolerance<float>(g.patch() + 3));
      run(progdiff::ConvEpilogue<float>{}, separate.data());
      const std::int64_t hw = g.out_hw();
      if (v.epilogue.bias) Elementwise::add_channel_bias<float>(g.n, g.c_out, hw, v.epilogue.bias, separate.data());
      if (v.epilogue.sample_bias)
        Elementwise::add_sample_channel<float>(g.n, g.c_out, hw, v.epilogue.sample_bias, separate.data());
      if (v.epilogue.residual) Elementwise::add<float>(y_size, separate.data(), v.epilogue.residual, separate.data());
      CHECK(std::equal(fused.begin(), fused.end(), separate.begin()));
    };
    for (const EpilogueCase::Variant& v : data.variants) {
      check("implicit GEMM", v, [&](const progdiff::ConvEpilogue<float>& e, float* y) {
        avx2::conv2d_forward_implicit(g, data.x.data(), data.w.data(), y, e);
      });
      if (avx2::winograd_forward_applies(g, 1))
        check("Winograd F(2x2)", v, [&](const progdiff::ConvEpilogue<float>& e, float* y) {
          avx2::conv2d_winograd_forward(g, 2, data.x.data(), data.w.data(), y, e);
        });
      if (avx2::winograd4::applies(g))
        check("Winograd F(4x4)", v, [&](const progdiff::ConvEpilogue<float>& e, float* y) {
          avx2::conv2d_winograd_forward(g, 4, data.x.data(), data.w.data(), y, e);
        });
    }
  }
}
#endif

#if defined(__AVX512F__)
TEST_CASE("The Winograd kernels refuse a geometry they do not cover") {
  namespace avx512 = progdiff::backend::cpu::avx512;
  const ConvGeometry strided{1, 16, 8, 8, 16, 3, 3, 2, 1};  // stride 2: not F(2x2, 3x3)
  const ConvGeometry shallow{1, 3, 8, 8, 16, 3, 3, 1, 1};   // 3 input channels
  std::vector<float> x(16 * 64), w(16 * 16 * 9), y(16 * 64);
  const auto taps = Cpu::forward_taps(strided, w.data());
  CHECK_THROWS_WITH(avx512::conv2d_winograd(strided, x.data(), taps, nullptr, y.data()),
                    doctest::Contains("conv2d_winograd: not a 3x3, stride-1, pad-1"));
  CHECK_THROWS_WITH(avx512::conv2d_winograd_backward_weight(shallow, x.data(), y.data(), w.data()),
                    doctest::Contains("16 or more channels"));
}
#endif

#if defined(__AVX512F__)
TEST_CASE("Where both forward kernels apply, each matches plain loops, whichever this machine chooses") {
  // The machine's kernel choices (kernel_choices.hpp) pick one of the two per shape, so the
  // cases above may run either; here each runs on its own, with and without a fused bias.
  namespace avx512 = progdiff::backend::cpu::avx512;
  const ConvGeometry cases[] = {
      {2, 48, 8, 8, 50, 3, 3, 1, 1}, {2, 32, 16, 16, 32, 3, 3, 1, 1}, {1, 16, 32, 32, 24, 3, 3, 1, 1}};
  for (const ConvGeometry& g : cases) {
    INFO("c_in=", g.c_in, " h=", g.h, " c_out=", g.c_out);
    REQUIRE(avx512::direct_applies(g));
    REQUIRE(avx512::winograd_applies(g));
    const std::size_t x_size = std::size_t(g.n * g.c_in * g.h * g.w), y_size = std::size_t(g.n * g.c_out * g.out_hw());
    const auto x = uniform(x_size, 31), w = uniform(std::size_t(g.c_out * g.patch()), 32),
               bias = uniform(std::size_t(g.c_out), 33);
    std::vector<double> want(y_size);
    reference::conv2d_forward<double>(g, x.data(), w.data(), want.data());
    for (std::size_t i = 0; i < y_size; ++i) want[i] += bias[(i / std::size_t(g.out_hw())) % std::size_t(g.c_out)];
    const auto xf = cast<float>(x), wf = cast<float>(w), bf = cast<float>(bias);
    std::vector<float> direct(y_size, NAN), winograd(y_size, NAN);
    avx512::conv2d_forward_direct(g, xf.data(), wf.data(), bf.data(), direct.data());
    avx512::conv2d_winograd(g, xf.data(), Cpu::forward_taps(g, wf.data()), bf.data(), winograd.data());
    CHECK(worst_error(direct, want) <= tolerance<float>(g.patch() + 1));
    CHECK(worst_error(winograd, want) <= tolerance<float>(g.patch() + 1));
  }
}

TEST_CASE("Both forward kernels add a per-sample bias and a residual as they store the output") {
  // Batches of small images put tiles of several samples into one Winograd block, so the
  // per-sample bias changes within a block; odd sizes leave partial tiles and stores.
  namespace avx512 = progdiff::backend::cpu::avx512;
  const ConvGeometry cases[] = {{3, 16, 8, 8, 16, 3, 3, 1, 1},
                                {2, 48, 8, 8, 50, 3, 3, 1, 1},
                                {2, 40, 16, 16, 20, 3, 3, 1, 1},
                                {2, 17, 7, 9, 18, 3, 3, 1, 1},
                                {2, 35, 8, 16, 3, 1, 1, 1, 0}};
  for (const ConvGeometry& g : cases) {
    INFO("n=", g.n, " c_in=", g.c_in, " h=", g.h, " w=", g.w, " c_out=", g.c_out, " k=", g.kh);
    const std::size_t y_size = std::size_t(g.n * g.c_out * g.out_hw());
    // Every term, then each of the per-sample bias and the residual on its own.
    const EpilogueCase data(g, 41, false);
    for (const EpilogueCase::Variant& v : data.variants) {
      INFO("epilogue: ", v.name);
      if (avx512::direct_applies(g)) {
        std::vector<float> direct(y_size, NAN);
        avx512::conv2d_forward_direct(g, data.x.data(), data.w.data(), v.epilogue, direct.data());
        CHECK(worst_error(direct, v.want) <= tolerance<float>(g.patch() + 3));
      }
      if (avx512::winograd_applies(g)) {
        std::vector<float> winograd(y_size, NAN);
        avx512::conv2d_winograd(g, data.x.data(), Cpu::forward_taps(g, data.w.data()), v.epilogue, winograd.data());
        CHECK(worst_error(winograd, v.want) <= tolerance<float>(g.patch() + 3));
      }
    }
  }
}
#endif

}  // namespace progdiff_tests_cpu_conv

// bf16 mixed precision of the CPU convolutions (matmul_precision.hpp): forward, backward data and
// backward weight against the same sums in double over operands rounded to bf16 here (round to
// nearest even on the bits, independently of the kernels' vcvtne2ps2bf16), within the error of
// summing the exact bf16 products in fp32. Also: the setting's errors, and that the fp32 default
// is what runs outside a bf16 scope.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernel_support.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/matmul_precision.hpp"

namespace progdiff_tests_cpu_bf16 {

namespace {

using progdiff::ConvGeometry;
using progdiff::backend::Cpu;
namespace cpu = progdiff::backend::cpu;
using progdiff::test::uniform;

/// x rounded to the nearest bf16 (ties to even), in double: the top 16 bits of its float.
double round_bf16(double x) {
  const auto bits = std::bit_cast<std::uint32_t>(static_cast<float>(x));
  const std::uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
  return static_cast<double>(std::bit_cast<float>(rounded));
}

std::vector<double> rounded(const std::vector<double>& v) {
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = round_bf16(v[i]);
  return r;
}

std::vector<float> as_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

/// Each output of a convolution in double, with the sum of its terms' magnitudes (for the bound).
struct Sums {
  std::vector<double> value, magnitude;
  explicit Sums(std::size_t n) : value(n, 0.0), magnitude(n, 0.0) {}
  void add(std::size_t i, double term) {
    value[i] += term;
    magnitude[i] += std::abs(term);
  }
};

/// The forward, backward-data and backward-weight sums of a convolution straight from their
/// definition (one loop over every product x * w, which feeds all three).
struct Reference {
  Sums y, dx, dw;
  Reference(const ConvGeometry& g, const std::vector<double>& x, const std::vector<double>& w,
            const std::vector<double>& dy)
      : y(std::size_t(g.n * g.c_out * g.out_hw())),
        dx(std::size_t(g.n * g.c_in * g.h * g.w)),
        dw(std::size_t(g.c_out * g.patch())) {
    const std::int64_t oh = g.out_h(), ow = g.out_w();
    for (std::int64_t n = 0; n < g.n; ++n)
      for (std::int64_t o = 0; o < g.c_out; ++o)
        for (std::int64_t c = 0; c < g.c_in; ++c)
          for (std::int64_t ki = 0; ki < g.kh; ++ki)
            for (std::int64_t kj = 0; kj < g.kw; ++kj)
              for (std::int64_t i = 0; i < oh; ++i)
                for (std::int64_t j = 0; j < ow; ++j) {
                  const std::int64_t yi = i * g.stride - g.pad + ki, xj = j * g.stride - g.pad + kj;
                  if (yi < 0 || yi >= g.h || xj < 0 || xj >= g.w) continue;
                  const auto xi = std::size_t(((n * g.c_in + c) * g.h + yi) * g.w + xj);
                  const auto wi = std::size_t(((o * g.c_in + c) * g.kh + ki) * g.kw + kj);
                  const auto oi = std::size_t(((n * g.c_out + o) * oh + i) * ow + j);
                  y.add(oi, w[wi] * x[xi]);
                  dx.add(xi, w[wi] * dy[oi]);
                  dw.add(wi, dy[oi] * x[xi]);
                }
  }
};

/// Summing `terms` exact products in fp32 (recursive summation, u = 2^-24) is within
/// (terms + 4) u of the sum of their magnitudes (4: block partial sums, the threads' partial
/// sums, a bias or a value accumulated into). A bf16 x bf16 product is exact in fp32 (8-bit
/// significands), so this is all the error there is once the operands are rounded.
void check_close(const std::vector<float>& got, const Sums& want, std::int64_t terms, const char* what) {
  const double u = std::ldexp(1.0, -24);
  std::size_t bad = 0;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double(got[i]) - want.value[i]);
    const double bound = double(terms + 4) * u * want.magnitude[i] + 1e-30;
    if (!(err <= bound)) ++bad;
    worst = std::max(worst, err / bound);
  }
  INFO(what, ": worst error / bound = ", worst);
  CHECK(bad == 0);
}

void check_bf16_conv(const ConvGeometry& g) {
  INFO("n=", g.n, " c_in=", g.c_in, " h=", g.h, " w=", g.w, " c_out=", g.c_out, " k=", g.kh, "x", g.kw,
       " stride=", g.stride, " pad=", g.pad);
  const std::size_t x_size = std::size_t(g.n * g.c_in * g.h * g.w), y_size = std::size_t(g.n * g.c_out * g.out_hw()),
                    w_size = std::size_t(g.c_out * g.patch());
  const auto x = uniform(x_size, 21), w = uniform(w_size, 22), dy = uniform(y_size, 23), bias = uniform(g.c_out, 24),
             dw0 = uniform(w_size, 25);
  // The reference sums the rounded operands; the kernels get the unrounded floats.
  const Reference ref(g, rounded(x), rounded(w), rounded(dy));
  const auto xf = as_float(x), wf = as_float(w), dyf = as_float(dy), biasf = as_float(bias);

  const cpu::MatmulPrecisionScope bf16(cpu::MatmulPrecision::bf16);
  std::vector<float> y(y_size, NAN);  // the kernels assign: stale contents must not matter
  Cpu::conv2d_forward<float>(g, xf.data(), wf.data(), y.data());
  check_close(y, ref.y, g.patch(), "forward");

  Sums y_bias = ref.y;
  for (std::size_t i = 0; i < y_size; ++i)
    y_bias.add(i, double(biasf[(i / std::size_t(g.out_hw())) % std::size_t(g.c_out)]));
  std::fill(y.begin(), y.end(), NAN);
  Cpu::conv2d_forward_bias<float>(g, xf.data(), wf.data(), biasf.data(), y.data());
  check_close(y, y_bias, g.patch() + 1, "forward with bias");

  std::vector<float> dx(x_size, NAN);
  Cpu::conv2d_backward_data<float>(g, dyf.data(), wf.data(), dx.data());
  check_close(dx, ref.dx, g.c_out * g.kh * g.kw, "backward data");

  // Backward weight accumulates into what is there (fp32, not rounded).
  Sums dw_want = ref.dw;
  for (std::size_t i = 0; i < w_size; ++i) dw_want.add(i, double(static_cast<float>(dw0[i])));
  auto dw = as_float(dw0);
  Cpu::conv2d_backward_weight<float>(g, xf.data(), dyf.data(), dw.data());
  check_close(dw, dw_want, g.n * g.out_hw() + 1, "backward weight");
}

/// The largest |got - want| over |want|'s scale: for the checks that a result is (or is not) fp32.
double worst_difference(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(double(got[i]) - want[i]));
  return worst;
}

bool bf16_runs_here() {
  const std::string reason = cpu::bf16_unavailable_reason(cpu::identify_cpu());
  if (!reason.empty()) MESSAGE("bf16 checks skipped: " << reason);
  return reason.empty();
}

}  // namespace

TEST_CASE("bf16 convolutions: forward, backward data and backward weight against bf16-rounded double sums") {
  if (!bf16_runs_here()) return;
  // Odd channel counts (the last pair half empty), partial 6-row panels, 1x1 and 5x5 kernels,
  // several channel blocks (96 channels x 9 taps), 64-channel panels of dW past the first, and
  // batches that leave the backward weight's last group of samples partial.
  check_bf16_conv({.n = 3, .c_in = 5, .h = 8, .w = 8, .c_out = 7, .kh = 3, .kw = 3, .stride = 1, .pad = 1});
  check_bf16_conv({.n = 2, .c_in = 32, .h = 16, .w = 16, .c_out = 64, .kh = 3, .kw = 3, .stride = 1, .pad = 1});
  check_bf16_conv({.n = 10, .c_in = 96, .h = 8, .w = 8, .c_out = 70, .kh = 3, .kw = 3, .stride = 1, .pad = 1});
  check_bf16_conv({.n = 2, .c_in = 3, .h = 8, .w = 16, .c_out = 13, .kh = 1, .kw = 1, .stride = 1, .pad = 0});
  check_bf16_conv({.n = 1, .c_in = 4, .h = 8, .w = 8, .c_out = 6, .kh = 5, .kw = 5, .stride = 1, .pad = 2});
  check_bf16_conv({.n = 2, .c_in = 16, .h = 32, .w = 32, .c_out = 17, .kh = 3, .kw = 3, .stride = 1, .pad = 1});
}

TEST_CASE("bf16 products are bf16: the forward differs from fp32 by bf16's rounding, not fp32's") {
  if (!bf16_runs_here()) return;
  const ConvGeometry g{.n = 2, .c_in = 16, .h = 8, .w = 8, .c_out = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1};
  const auto x = uniform(std::size_t(g.n * g.c_in * g.h * g.w), 31), w = uniform(std::size_t(g.c_out * g.patch()), 32);
  const Reference exact(g, x, w, std::vector<double>(std::size_t(g.n * g.c_out * g.out_hw()), 0.0));
  const auto xf = as_float(x), wf = as_float(w);
  std::vector<float> y(exact.y.value.size());
  {
    const cpu::MatmulPrecisionScope bf16(cpu::MatmulPrecision::bf16);
    Cpu::conv2d_forward<float>(g, xf.data(), wf.data(), y.data());
  }
  // 144 products of two values each off by up to 2^-9 relative: far more than fp32's 1e-5.
  CHECK(worst_difference(y, exact.y.value) > 1e-3);
  CHECK(cpu::matmul_precision() == cpu::MatmulPrecision::fp32);  // the scope restored the default
  Cpu::conv2d_forward<float>(g, xf.data(), wf.data(), y.data());
  CHECK(worst_difference(y, exact.y.value) < 1e-4);
}

TEST_CASE("bf16: convolutions the bf16 kernels do not cover stay fp32") {
  if (!bf16_runs_here()) return;
  // Stride 2 (the down-sampler) and a 28x28 image (not whole 64-pixel panels).
  for (const ConvGeometry& g :
       {ConvGeometry{.n = 2, .c_in = 16, .h = 16, .w = 16, .c_out = 16, .kh = 3, .kw = 3, .stride = 2, .pad = 1},
        ConvGeometry{.n = 2, .c_in = 16, .h = 28, .w = 28, .c_out = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1}}) {
    const auto x = uniform(std::size_t(g.n * g.c_in * g.h * g.w), 41),
               w = uniform(std::size_t(g.c_out * g.patch()), 42);
    const Reference exact(g, x, w, std::vector<double>(std::size_t(g.n * g.c_out * g.out_hw()), 0.0));
    const auto xf = as_float(x), wf = as_float(w);
    std::vector<float> y(exact.y.value.size());
    const cpu::MatmulPrecisionScope bf16(cpu::MatmulPrecision::bf16);
    Cpu::conv2d_forward<float>(g, xf.data(), wf.data(), y.data());
    CHECK(worst_difference(y, exact.y.value) < 1e-4);
  }
}

TEST_CASE("bf16 on a CPU without AVX512_BF16 is an error that names the feature") {
  cpu::CpuIdentity old_cpu;
  old_cpu.brand = "Example CPU";
  old_cpu.avx512f = true;
  old_cpu.avx512_bf16 = false;
  CHECK_THROWS_WITH_AS(cpu::require_matmul_precision(cpu::MatmulPrecision::bf16, old_cpu),
                       doctest::Contains("AVX512_BF16"), progdiff::ConfigError);
  CHECK_THROWS_WITH_AS(cpu::require_matmul_precision(cpu::MatmulPrecision::bf16, old_cpu),
                       doctest::Contains("Example CPU"), progdiff::ConfigError);
  CHECK_NOTHROW(cpu::require_matmul_precision(cpu::MatmulPrecision::fp32, old_cpu));
  CHECK_THROWS_WITH_AS(cpu::parse_matmul_precision("fp16"), doctest::Contains("fp32 | bf16"), progdiff::ConfigError);
  CHECK(cpu::parse_matmul_precision("bf16") == cpu::MatmulPrecision::bf16);
  CHECK(cpu::matmul_precision() == cpu::MatmulPrecision::fp32);  // the default
}

}  // namespace progdiff_tests_cpu_bf16

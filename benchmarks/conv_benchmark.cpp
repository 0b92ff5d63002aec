// Conv2d forward, backward-data and backward-weight at the 3x3 shapes of a 32x32 U-Net
// (batch 64, pad 1): the back end's choice (Winograd F(2x2, 3x3) at these shapes), its direct
// implicit-GEMM kernels on their own (AVX-512, or AVX2 without AVX-512), and the im2col + Eigen
// baseline. GFLOP/s always counts
// the direct convolution's 2 * c_out * c_in * 9 FLOPs per pixel, so Winograd, which does
// 2.25x fewer multiply-adds, can show more than the machine's peak; the direct rows are the
// ones to hold against the peak. The bf16 rows run the back end under bf16 mixed precision
// (backend/cpu/matmul_precision.hpp: the direct kernels with bf16 operands and fp32 sums); they
// report an error where the CPU lacks AVX512_BF16.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "benchmark_counters.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/matmul_precision.hpp"

namespace {

using progdiff::ConvGeometry;
using progdiff::backend::Cpu;
using progdiff::backend::cpu::EigenGemm;

enum Pass { kForward, kBackwardData, kBackwardWeight };
enum Impl { kProgdiff, kDirect, kBf16, kIm2colEigen };

template <Pass P, Impl I>
void conv(benchmark::State& state) {
  const std::int64_t n = state.range(0), c = state.range(1), hw = state.range(2);
  const ConvGeometry g{n, c, hw, hw, c, 3, 3, 1, 1};
  std::vector<float> x(std::size_t(n * c * hw * hw), 0.5f), y(x.size(), 0.25f), w(std::size_t(c * c * 9), 0.125f),
      dw(w.size(), 0.0f);
  namespace cpu = progdiff::backend::cpu;
  std::optional<cpu::MatmulPrecisionScope> bf16;
  if constexpr (I == kBf16) {
    const std::string reason = cpu::bf16_unavailable_reason(cpu::identify_cpu());
    if (!reason.empty()) {
      state.SkipWithError(reason.c_str());
      return;
    }
    bf16.emplace(cpu::MatmulPrecision::bf16);
  }
  progdiff::bench::run_with_flops(state, double(g.forward_flops()), [&] {
#if defined(__AVX512F__)
    namespace avx512 = progdiff::backend::cpu::avx512;
    if constexpr (I == kDirect) {
      if constexpr (P == kForward)
        avx512::conv2d_forward_rowmajor(g, x.data(), w.data(), y.data());
      else if constexpr (P == kBackwardData)
        avx512::conv2d_backward_data_stride1(g, y.data(), w.data(), x.data());
      else
        avx512::conv2d_backward_weight(g, x.data(), y.data(), dw.data());
      benchmark::ClobberMemory();
      return;
    }
#elif defined(__AVX2__) && defined(__FMA__)
    namespace avx2 = progdiff::backend::cpu::avx2;
    if constexpr (I == kDirect) {  // the implicit-GEMM kernels, Winograd never
      if constexpr (P == kForward)
        avx2::conv2d_forward_implicit(g, x.data(), w.data(), y.data());
      else if constexpr (P == kBackwardData)
        avx2::conv2d_backward_data_as_forward(g, y.data(), w.data(), x.data(),
                                              std::numeric_limits<std::int64_t>::max(), 2);
      else
        avx2::conv2d_backward_weight_implicit(g, x.data(), y.data(), dw.data());
      benchmark::ClobberMemory();
      return;
    }
#endif
    if constexpr (P == kForward) {
      if constexpr (I == kProgdiff || I == kBf16)
        Cpu::conv2d_forward<float>(g, x.data(), w.data(), y.data());
      else
        Cpu::im2col_forward<float, EigenGemm>(g, x.data(), w.data(), y.data());
    } else if constexpr (P == kBackwardData) {
      if constexpr (I == kProgdiff || I == kBf16)
        Cpu::conv2d_backward_data<float>(g, y.data(), w.data(), x.data());
      else
        Cpu::im2col_backward_data<float, EigenGemm>(g, y.data(), w.data(), x.data());
    } else {
      if constexpr (I == kProgdiff || I == kBf16)
        Cpu::conv2d_backward_weight<float>(g, x.data(), y.data(), dw.data());
      else
        Cpu::im2col_backward_weight<float, EigenGemm>(g, x.data(), y.data(), dw.data());
    }
    benchmark::ClobberMemory();
  });
}

void unet_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "c", "hw"});
  b->Args({64, 64, 32})->Args({64, 128, 32})->Args({64, 128, 16})->Args({64, 256, 16})->Args({64, 256, 8});
  b->Unit(benchmark::kMillisecond)->UseManualTime();
}

BENCHMARK(conv<kForward, kProgdiff>)->Name("conv3x3_forward/progdiff")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardData, kProgdiff>)->Name("conv3x3_backward_data/progdiff")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardWeight, kProgdiff>)->Name("conv3x3_backward_weight/progdiff")->Apply(unet_shapes);
BENCHMARK(conv<kForward, kBf16>)->Name("conv3x3_forward/bf16")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardData, kBf16>)->Name("conv3x3_backward_data/bf16")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardWeight, kBf16>)->Name("conv3x3_backward_weight/bf16")->Apply(unet_shapes);
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
BENCHMARK(conv<kForward, kDirect>)->Name("conv3x3_forward/direct")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardData, kDirect>)->Name("conv3x3_backward_data/direct")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardWeight, kDirect>)->Name("conv3x3_backward_weight/direct")->Apply(unet_shapes);
#endif
BENCHMARK(conv<kForward, kIm2colEigen>)->Name("conv3x3_forward/im2col_eigen")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardData, kIm2colEigen>)->Name("conv3x3_backward_data/im2col_eigen")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardWeight, kIm2colEigen>)->Name("conv3x3_backward_weight/im2col_eigen")->Apply(unet_shapes);

}  // namespace

// Conv2d forward, backward-data and backward-weight at the 3x3 shapes of a 32x32 U-Net
// (batch 64, pad 1): the back end's kernels against the im2col + Eigen baseline.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "benchmark_counters.hpp"
#include "progdiff/backend/cpu/cpu.hpp"

namespace {

using progdiff::ConvGeometry;
using progdiff::backend::Cpu;
using progdiff::backend::cpu::EigenGemm;

enum Pass { kForward, kBackwardData, kBackwardWeight };
enum Impl { kProgdiff, kIm2colEigen };

template <Pass P, Impl I>
void conv(benchmark::State& state) {
  const std::int64_t n = state.range(0), c = state.range(1), hw = state.range(2);
  const ConvGeometry g{n, c, hw, hw, c, 3, 3, 1, 1};
  std::vector<float> x(std::size_t(n * c * hw * hw), 0.5f), y(x.size(), 0.25f), w(std::size_t(c * c * 9), 0.125f),
      dw(w.size(), 0.0f);
  progdiff::bench::run_with_flops(state, double(g.forward_flops()), [&] {
    if constexpr (P == kForward) {
      if constexpr (I == kProgdiff)
        Cpu::conv2d_forward<float>(g, x.data(), w.data(), y.data());
      else
        Cpu::im2col_forward<float, EigenGemm>(g, x.data(), w.data(), y.data());
    } else if constexpr (P == kBackwardData) {
      if constexpr (I == kProgdiff)
        Cpu::conv2d_backward_data<float>(g, y.data(), w.data(), x.data());
      else
        Cpu::im2col_backward_data<float, EigenGemm>(g, y.data(), w.data(), x.data());
    } else {
      if constexpr (I == kProgdiff)
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
BENCHMARK(conv<kForward, kIm2colEigen>)->Name("conv3x3_forward/im2col_eigen")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardData, kIm2colEigen>)->Name("conv3x3_backward_data/im2col_eigen")->Apply(unet_shapes);
BENCHMARK(conv<kBackwardWeight, kIm2colEigen>)->Name("conv3x3_backward_weight/im2col_eigen")->Apply(unet_shapes);

}  // namespace

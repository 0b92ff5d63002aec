// SGEMM: the packed kernel of the running instruction set (Cpu::gemm: AVX-512 or AVX2) against
// Eigen, square and convolution-shaped.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "benchmark_counters.hpp"
#include "progdiff/backend/cpu/cpu.hpp"

namespace {

using progdiff::Trans;
using progdiff::backend::Cpu;

template <bool UseEigen>
void sgemm(benchmark::State& state) {
  const std::int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
  progdiff::bench::run_with_flops(state, 2.0 * double(m) * double(n) * double(k), [&] {
    if constexpr (UseEigen)
      Cpu::gemm_eigen<float>(Trans::No, Trans::No, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    else
      Cpu::gemm<float>(Trans::No, Trans::No, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  });
}

void gemm_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k"});
  for (std::int64_t s : {512, 1024, 2048}) b->Args({s, s, s});
  b->Args({128, 65536, 1152});  // a 3x3 convolution of 128 channels over 64 images of 32x32
  // One image's 3x3 convolution as the im2col path runs it (32 and 64 channels at 32x32).
  b->Args({32, 1024, 288});
  b->Args({64, 1024, 576});
  b->Unit(benchmark::kMillisecond)->UseManualTime();
}

BENCHMARK(sgemm<false>)->Name("sgemm/progdiff")->Apply(gemm_shapes);
BENCHMARK(sgemm<true>)->Name("sgemm/eigen")->Apply(gemm_shapes);

}  // namespace

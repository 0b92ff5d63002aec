// The optimal denoiser of Prop. 1 eq. 4 (multi-stage paper) over a Fashion-MNIST-sized data set,
// n = 60000 points of d = 784, for a batch of queries: two GEMMs of 2 m n d FLOPs each plus the
// row softmax.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "benchmark_counters.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/group/optimal_denoiser.hpp"

namespace {

using progdiff::Shape;
using progdiff::Tensor;
using progdiff::backend::Cpu;

void optimal_denoiser(benchmark::State& state) {
  const std::int64_t n = state.range(0), d = state.range(1), m = state.range(2);
  progdiff::Generator gen(1);
  std::vector<float> y(static_cast<std::size_t>(n * d)), x(static_cast<std::size_t>(m * d));
  for (auto& v : y) v = gen.uniform();
  for (auto& v : x) v = gen.normal<float>();
  const progdiff::group::OptimalDenoiser<Cpu> den(Tensor<float, Cpu>::from_host(Shape{n, d}, y));
  const auto xs = Tensor<float, Cpu>::from_host(Shape{m, d}, x);
  progdiff::bench::run_with_flops(state, 4.0 * double(m) * double(n) * double(d), [&] {
    auto out = den(xs, 0.8, 0.5);
    benchmark::DoNotOptimize(out.data());
  });
}

BENCHMARK(optimal_denoiser)
    ->ArgNames({"n", "d", "m"})
    ->Args({60000, 784, 128})
    ->Args({60000, 784, 512})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

}  // namespace

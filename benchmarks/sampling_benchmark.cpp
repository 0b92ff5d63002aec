// Deterministic 100-step DDIM sampling of a batch of 16 with the two benchmark U-Nets:
// images per second and GFLOP/s of the 100 forward passes.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "benchmark_counters.hpp"
#include "model_bench.hpp"

namespace {

namespace pd = progdiff;

template <class Net>
void ddim_sampling(benchmark::State& state) {
  const std::int64_t batch = state.range(0), steps = state.range(1);
  pd::bench::DdimSampling<Net> sampling(steps);
  const double flops =
      static_cast<double>(steps) * static_cast<double>(sampling.net().flops(sampling.net().input_shape(batch)));
  pd::bench::DdimSampling<Net>(2).run(batch);  // warm-up of the block cache and threads
  pd::bench::run_with_flops(state, flops, [&] { benchmark::DoNotOptimize(sampling.run(batch)); });
  state.counters["img_per_s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void batch_16_steps_100(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "steps"})->Args({16, 100})->Unit(benchmark::kSecond)->UseManualTime()->Iterations(1);
}

BENCHMARK(ddim_sampling<pd::bench::DefaultNet>)->Name("ddim/default_unet")->Apply(batch_16_steps_100);
BENCHMARK(ddim_sampling<pd::bench::CifarNet>)->Name("ddim/cifar_unet")->Apply(batch_16_steps_100);

}  // namespace

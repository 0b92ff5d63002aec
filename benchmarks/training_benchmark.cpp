// One diffusion training step (forward, epsilon MSE, backward, AdamW) of the two benchmark
// U-Nets at batch 64: images per second, GFLOP/s counted as 3x the forward FLOPs (backward
// costs two forwards), and the peak tensor memory of a step above what persists between steps.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "benchmark_counters.hpp"
#include "model_bench.hpp"

namespace {

namespace pd = progdiff;

template <class Net>
void training_step(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  pd::bench::TrainingStep<Net> step(batch);
  const double flops = 3.0 * static_cast<double>(step.net().flops(step.net().input_shape(batch)));
  step.run();  // warm-up: AdamW's moments appear, the block cache fills
  const std::size_t persistent = pd::backend::cpu::memory_stats().live_bytes;
  pd::backend::cpu::reset_peak_memory();
  pd::bench::run_with_flops(state, flops, [&] { step.run(); });
  const auto memory = pd::backend::cpu::memory_stats();
  state.counters["img_per_s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["persistent_MiB"] = static_cast<double>(persistent) / (1 << 20);
  state.counters["peak_MiB"] = static_cast<double>(memory.peak_bytes) / (1 << 20);
  state.counters["parameters"] = static_cast<double>(step.net().parameter_count());
}

void batch_64(benchmark::internal::Benchmark* b) {
  b->ArgName("batch")->Arg(64)->Unit(benchmark::kMillisecond)->UseManualTime()->Iterations(3);
}

BENCHMARK(training_step<pd::bench::DefaultNet>)->Name("train_step/default_unet")->Apply(batch_64);
BENCHMARK(training_step<pd::bench::CifarNet>)->Name("train_step/cifar_unet")->Apply(batch_64);

}  // namespace

// Sampling time of a TDC-pruned progressive model against its base (Step-Adaptive Training,
// sec. 5: a progressive model's cost is its FLOPs averaged over the timesteps it evaluates).
//
// The base is the main job's default U-Net (model_bench.hpp DefaultNet); the progressive model
// prunes it per group of FLOPs-interval grouping (eqs. 8-10, k = 0.5) with magnitude importance
// down to each group's budget (tdc/pruning.hpp's path without the fine-tuning, which does
// not change the cost). Each iteration samples one batch with DDIM from both models, alternating,
// so both see the same machine load, and reports
//   time_ratio   progressive time / base time
//   flops_ratio  the FLOPs of the denoiser calls DDIM makes (its timesteps' groups) over the base's
//   gap_pct      100 (time_ratio / flops_ratio - 1): the target is |gap| <= 10%
// Arguments: batch, DDIM steps, groups.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "model_bench.hpp"
#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/group/flops_interval.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/prune/importance_magnitude.hpp"
#include "progdiff/prune/prune_to_flops.hpp"

namespace {

namespace pd = progdiff;
using Net = pd::bench::DefaultNet;
using Model = pd::model::Progressive<Net>;
using Cpu = pd::backend::Cpu;

void tdc_sampling_ratio(benchmark::State& state) {
  const std::int64_t batch = state.range(0), steps = state.range(1), groups = state.range(2);
  const pd::schedule::Linear<1000> schedule;
  pd::Generator gen(1);
  Net net;
  net.initialize(gen);
  const pd::Shape image = net.input_shape(1);
  const double base_flops = static_cast<double>(net.flops(image));
  const auto partition = pd::group::FlopsIntervalGrouper<pd::difficulty::SnrFlops>{groups, {0.5}}.group(schedule);
  std::vector<Net> nets;
  for (std::int64_t g = 0; g < partition.groups(); ++g)
    nets.push_back(pd::prune::prune_to_flops(net, pd::prune::MagnitudeImportance{},
                                             partition.budgets[static_cast<std::size_t>(g)] * base_flops));
  Model progressive(partition, std::move(nets));
  Model base(std::move(net), schedule.size());

  const auto sampler = pd::sample::Ddim::from_schedule(schedule, steps);
  double flops = 0.0;  // of the progressive model's denoiser calls, per image
  for (std::int64_t e = 0; e < sampler.evaluations(); ++e) {
    const auto t = static_cast<std::int64_t>(sampler.model_call(e).timestep);
    flops += static_cast<double>(progressive.flops(image, progressive.group_of(t)));
  }
  const double flops_ratio = flops / (base_flops * static_cast<double>(sampler.evaluations()));

  const pd::Shape shape = base.denoiser(0).input_shape(batch);
  auto time = [&](Model& m, std::uint64_t seed) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(sampler.sample<float, Cpu>(m, shape, seed, 0));
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  time(base, 0), time(progressive, 0);  // warm-up of the block cache and threads
  double base_seconds = 0.0, tdc_seconds = 0.0;
  for (auto _ : state) {
    const double b = time(base, 1), p = time(progressive, 1);
    base_seconds += b, tdc_seconds += p;
    state.SetIterationTime(b + p);
  }
  const double time_ratio = tdc_seconds / base_seconds;
  state.counters["base_s"] = base_seconds / static_cast<double>(state.iterations());
  state.counters["tdc_s"] = tdc_seconds / static_cast<double>(state.iterations());
  state.counters["time_ratio"] = time_ratio;
  state.counters["flops_ratio"] = flops_ratio;
  state.counters["avg_flops_ratio"] = progressive.average_flops(image) / base_flops;  // over all T timesteps
  state.counters["gap_pct"] = 100.0 * (time_ratio / flops_ratio - 1.0);
}

BENCHMARK(tdc_sampling_ratio)
    ->Name("tdc/ddim_pruned_vs_base")
    ->ArgNames({"batch", "steps", "groups"})
    ->Args({16, 20, 4})
    ->Args({16, 20, 10})
    ->Unit(benchmark::kSecond)
    ->UseManualTime()
    ->Iterations(3);

}  // namespace

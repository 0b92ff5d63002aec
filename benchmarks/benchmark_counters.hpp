#pragma once
// The one helper every benchmark reports through: it times each iteration itself and adds
// GFLOP/s and % of the machine's FP32 peak (printed once by machine_peak()).
#include <benchmark/benchmark.h>

#include <chrono>

#include "machine_peak.hpp"

namespace progdiff::bench {

/// Runs `body` once per iteration (register the benchmark with UseManualTime()) and reports
/// `flops_per_iteration` as GFLOP/s and %peak.
template <class F>
void run_with_flops(benchmark::State& state, double flops_per_iteration, F&& body) {
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(dt);
    seconds += dt;
  }
  const double gflops = flops_per_iteration * double(state.iterations()) / seconds * 1e-9;
  state.counters["GFLOPs"] = gflops;
  state.counters["pct_peak"] = 100.0 * gflops / machine_peak().gflops();
}

}  // namespace progdiff::bench

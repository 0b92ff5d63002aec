// Prints the machine's FP32 peak once, then runs the registered benchmarks.
#include <benchmark/benchmark.h>

#include "machine_peak.hpp"

int main(int argc, char** argv) {
  progdiff::bench::machine_peak();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

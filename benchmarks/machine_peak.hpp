#pragma once
// The FP32 peak of the machine the benchmark runs on: the FMA throughput of its threads,
// measured (backend/cpu/fma_throughput.hpp) rather than computed from lanes x pipes x clock,
// since machines with the same instruction set differ there (AMD Zen 4 runs a 512-bit FMA in
// two halves, Zen 5 and recent Xeons in one). PROGDIFF_PEAK_GFLOPS fixes the figure instead.
#include <omp.h>

#include <cstdio>
#include <cstdlib>

#include "progdiff/backend/cpu/cpu_identity.hpp"
#include "progdiff/backend/cpu/fma_throughput.hpp"

namespace progdiff::bench {

struct MachinePeak {
  int threads = 0;
  double measured_gflops = 0;
  double gflops() const { return measured_gflops; }
};

inline const MachinePeak& machine_peak() {
  static const MachinePeak peak = [] {
    MachinePeak p;
    p.threads = omp_get_max_threads();
    const char* fixed = std::getenv("PROGDIFF_PEAK_GFLOPS");
    p.measured_gflops = fixed ? std::atof(fixed) : backend::cpu::measure_fma_gflops(p.threads);
    const backend::cpu::CpuIdentity cpu = backend::cpu::identify_cpu();
    std::printf("CPU: %s (%s family %d, model %d); FP32 FMA peak of %d threads: %.0f GFLOP/s (%s)\n", cpu.brand.c_str(),
                cpu.vendor.c_str(), cpu.family, cpu.model, p.threads, p.measured_gflops,
                fixed ? "PROGDIFF_PEAK_GFLOPS" : "measured");
    return p;
  }();
  return peak;
}

}  // namespace progdiff::bench

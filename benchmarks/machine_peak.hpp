#pragma once
// The FP32 peak of the machine the benchmark runs on, computed from its parts:
// vector lanes x 2 FLOP per FMA x FMA pipes x cores x clock. The clock is measured
// (a chain of dependent integer adds retires one per cycle), since a virtual machine's
// reported frequency is its nominal one.
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace progdiff::bench {

struct MachinePeak {
  int float_lanes = 0;  // floats per vector register the compiler targets
  int fma_pipes = 0;    // FMA issue ports per core
  int cores = 0;        // OpenMP threads the kernels use
  double clock_ghz = 0;
  double gflops() const { return 2.0 * float_lanes * fma_pipes * cores * clock_ghz; }
};

/// Cycles per second of a core while every core runs (all-core clock), from a dependent
/// chain of 1-cycle adds on each thread; the fastest thread of several tries, since other
/// processes on a shared machine only ever slow a thread down.
inline double measure_clock_ghz() {
  constexpr std::int64_t kIterations = 40'000'000;  // 8 adds each
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    double fastest = 0;
#pragma omp parallel reduction(max : fastest)
    {
      std::int64_t x = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (std::int64_t i = 0; i < kIterations; ++i)
        asm volatile(
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
            : "+r"(x));
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      // The loop counter runs beside the chain, so the chain sets the pace.
      fastest = 8.0 * double(kIterations) / s * 1e-9;
    }
    if (fastest > best) best = fastest;
  }
  return best;
}

/// Lanes from the instruction set compiled for; FMA pipes from PROGDIFF_FMA_PIPES (default 2:
/// Zen 5, Ice Lake-SP and later Xeons have two 512-bit FMA pipes).
inline const MachinePeak& machine_peak() {
  static const MachinePeak peak = [] {
    MachinePeak p;
#if defined(__AVX512F__)
    p.float_lanes = 16;
#elif defined(__AVX__)
    p.float_lanes = 8;
#else
    p.float_lanes = 4;
#endif
    const char* pipes = std::getenv("PROGDIFF_FMA_PIPES");
    p.fma_pipes = pipes ? std::atoi(pipes) : 2;
    p.cores = omp_get_max_threads();
    const char* clock = std::getenv("PROGDIFF_CLOCK_GHZ");  // overrides the measurement
    p.clock_ghz = clock ? std::atof(clock) : measure_clock_ghz();
    std::printf("FP32 peak: %d lanes x 2 FLOP/FMA x %d FMA pipes x %d cores x %.2f GHz = %.0f GFLOP/s\n", p.float_lanes,
                p.fma_pipes, p.cores, p.clock_ghz, p.gflops());
    return p;
  }();
  return peak;
}

}  // namespace progdiff::bench

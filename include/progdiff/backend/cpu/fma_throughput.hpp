#pragma once
// The single-precision FMA throughput of the running machine, measured: every thread runs
// independent chains of fused multiply-adds on the widest vectors compiled for. This is the peak
// a convolution kernel is held against. It is measured rather than computed from lanes x pipes
// x clock because those differ between machines that share an instruction set: AMD Zen 4 runs
// a 512-bit FMA as two 256-bit halves (half of Zen 5's rate per clock), and a virtual machine's
// nominal clock is not the one it runs at.
#include <omp.h>

#include <chrono>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

// Optimized in every build, like the kernels it is the peak of: at -O1 (the release preset's
// applications) GCC kept the FMA chains' accumulators in memory and measured a quarter of the peak.
PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

/// GFLOP/s of `threads` OpenMP threads that each call kernel(thread number) once, a call doing
/// flops_per_call FLOPs, the best of `tries`: other processes on a shared machine only ever slow
/// a try down. The float each call returns is summed into a volatile, which keeps its work alive.
template <class Kernel>
double best_gflops(Kernel&& kernel, double flops_per_call, int threads, int tries) {
  double best = 0;
  volatile float sink = 0;
  for (int attempt = 0; attempt < tries; ++attempt) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
      const float result = kernel(omp_get_thread_num());
#pragma omp critical
      sink = sink + result;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double gflops = flops_per_call * threads / seconds * 1e-9;
    if (gflops > best) best = gflops;
  }
  return best;
}

namespace detail {

// 12 independent chains cover 4-cycle latency on 2 pipes with room to spare.
inline constexpr int kFmaChains = 12;
inline constexpr std::int64_t kFmaIterations = 2'000'000;

// The vector operations of the chains, per instruction set: always inlined, since at -O1 GCC did
// not inline lambdas wrapping the intrinsics into the loop, even inside the optimized region.
#if defined(__AVX512F__)
using FmaVector = __m512;
inline constexpr int kFmaLanes = 16;
[[gnu::always_inline]] inline FmaVector fma_splat(float v) { return _mm512_set1_ps(v); }
[[gnu::always_inline]] inline FmaVector fma_step(FmaVector a, FmaVector b, FmaVector c) {
  return _mm512_fmadd_ps(a, b, c);
}
[[gnu::always_inline]] inline FmaVector fma_add(FmaVector a, FmaVector b) { return _mm512_add_ps(a, b); }
[[gnu::always_inline]] inline float fma_lane_sum(FmaVector v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__)
using FmaVector = __m256;
inline constexpr int kFmaLanes = 8;
[[gnu::always_inline]] inline FmaVector fma_splat(float v) { return _mm256_set1_ps(v); }
[[gnu::always_inline]] inline FmaVector fma_step(FmaVector a, FmaVector b, FmaVector c) {
  return _mm256_fmadd_ps(a, b, c);
}
[[gnu::always_inline]] inline FmaVector fma_add(FmaVector a, FmaVector b) { return _mm256_add_ps(a, b); }
[[gnu::always_inline]] inline float fma_lane_sum(FmaVector v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  float total = 0;
  for (float lane : lanes) total += lane;
  return total;
}
#endif

#if defined(__AVX512F__) || defined(__AVX2__)
/// The sum of every lane of every chain: what keeps the chains' work alive.
[[gnu::always_inline]] inline float sum_of_chains(FmaVector (&acc)[kFmaChains]) {
  for (int i = 1; i < kFmaChains; ++i) acc[0] = fma_add(acc[0], acc[i]);
  return fma_lane_sum(acc[0]);
}

/// One thread's chains of FMAs, summed; the chains unrolled, so that -O2 too keeps them in
/// registers.
inline float fma_chains(int thread) {
  FmaVector acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = fma_splat(0.001f * float(i + thread));
  const FmaVector scale = fma_splat(0.999999f), shift = fma_splat(1e-7f);
  for (std::int64_t it = 0; it < kFmaIterations; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < kFmaChains; ++i) acc[i] = fma_step(acc[i], scale, shift);
  return sum_of_chains(acc);
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BF16__)
inline constexpr std::int64_t kBf16DotIterations = 1'000'000;

/// One thread's chains of bf16 dot products (vdpbf16ps), summed; written like fma_chains, a
/// plain function with the chains unrolled, so that no optimization level leaves them in memory.
inline float bf16_dot_chains(int thread) {
  FmaVector acc[kFmaChains];  // __m512: AVX512_BF16 implies AVX512F
  for (int i = 0; i < kFmaChains; ++i) acc[i] = fma_splat(0.001f * float(i + thread));
  // bf16 pairs (1.0, 2^-20): small products, so the sums stay finite and normal.
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3F803F80), b = (__m512bh)_mm512_set1_epi32(0x35803580);
  for (std::int64_t it = 0; it < kBf16DotIterations; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  return sum_of_chains(acc);
}
#endif

}  // namespace detail

/// FP32 GFLOP/s (2 per lane and FMA) of `threads` OpenMP threads, the best of `tries`. About
/// 0.1 s per try on 2 cores.
inline double measure_fma_gflops(int threads = omp_get_max_threads(), int tries = 5) {
#if defined(__AVX512F__) || defined(__AVX2__)
  return best_gflops(detail::fma_chains, 2.0 * detail::kFmaLanes * detail::kFmaChains * double(detail::kFmaIterations),
                     threads, tries);
#else
  (void)threads;
  (void)tries;
  return 0.0;  // no vector FMA compiled for
#endif
}

/// GFLOP/s of AVX512_BF16's dot product vdpbf16ps (each fp32 lane adds two bf16 products: 4
/// FLOPs per lane and instruction), measured as measure_fma_gflops measures the FMA; 0 where the
/// build has no AVX512_BF16. This is the peak of the bf16 convolutions (matmul_precision.hpp):
/// twice the FMA peak where the dot product issues as fast as an FMA, less where it does not.
inline double measure_bf16_dot_gflops(int threads = omp_get_max_threads(), int tries = 5) {
#if defined(__AVX512F__) && defined(__AVX512BF16__)
  return best_gflops(detail::bf16_dot_chains, 4.0 * 16 * detail::kFmaChains * double(detail::kBf16DotIterations),
                     threads, tries);
#else
  (void)threads;
  (void)tries;
  return 0.0;  // no AVX512_BF16 compiled for
#endif
}

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

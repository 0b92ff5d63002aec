#pragma once
// Kernels of the samplers on the CPU back end: a per-sample weighted sum of up to six
// tensors, the one operation every sampler update reduces to once its coefficients are known
// (DDPM eq. 7, DDIM eq. 12, DPM-Solver++ updates, Euler / Heun steps), and per-row Philox noise.
#include <array>
#include <cstddef>
#include <cstdint>

#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/elementwise.hpp"
#include "progdiff/backend/math/philox.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

struct Sampling {
  /// Terms an update may combine: sample, model output, noise and three history buffers.
  static constexpr int sampler_terms = 6;

  /// out[i, j] = sum_k w[i, k] * terms[k][i, j], summed in double.
  // terms[k], out: [N, D]; w: [N, sampler_terms] (back-end memory). A null term is skipped,
  // so its weight is ignored; out may alias any term (each element is read before it is written).
  template <class T>
  static void weighted_sum(std::int64_t n, std::int64_t d, const double* w, std::array<const T*, sampler_terms> terms,
                           T* out) {
#pragma omp parallel for if (n * d > kParallelThreshold)
    for (std::int64_t i = 0; i < n; ++i) {
      const double* wi = w + i * sampler_terms;
      for (std::int64_t j = 0; j < d; ++j) {
        const std::int64_t at = i * d + j;
        double acc = 0.0;
        for (int k = 0; k < sampler_terms; ++k)
          if (terms[k]) acc += wi[k] * static_cast<double>(terms[k][at]);
        out[at] = static_cast<T>(acc);
      }
    }
  }

  /// Row r of x [rows, d] gets the standard normals (seed, streams[r]) at indices
  /// offsets[r] .. offsets[r] + d - 1: every sample of a batch draws from its own stream.
  /// streams and offsets are host arrays of `rows` entries.
  template <class T>
  static void normal_rows(std::int64_t rows, std::int64_t d, std::uint64_t seed, const std::uint64_t* streams,
                          const std::uint64_t* offsets, T* x) {
#pragma omp parallel for collapse(2) if (rows * d > kParallelThreshold)
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t j = 0; j < d; ++j)
        x[r * d + j] = math::philox_normal<T>(seed, streams[r], offsets[r] + static_cast<std::uint64_t>(j));
  }
};

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

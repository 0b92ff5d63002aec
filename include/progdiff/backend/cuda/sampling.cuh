#pragma once
// Kernels of the samplers on the CUDA back end, the twin of backend/cpu/sampling.hpp.
#include <cuda_runtime.h>

#include <array>
#include <cstdint>

#include "progdiff/backend/cuda/check.cuh"
#include "progdiff/backend/cuda/context.cuh"

namespace progdiff::backend::cuda {

namespace kernels {
inline constexpr int kSamplerTerms = 6;
template <class T>
struct SamplerTerms {
  const T* p[kSamplerTerms];
};
// terms.p[k], out: [N, D]; w: [N, kSamplerTerms]
template <class T>
__global__ void weighted_sum(long long n, long long d, const double* w, SamplerTerms<T> terms, T* out) {
  for (long long at = blockIdx.x * (long long)blockDim.x + threadIdx.x; at < n * d;
       at += (long long)gridDim.x * blockDim.x) {
    const double* wi = w + (at / d) * kSamplerTerms;
    double acc = 0.0;
#pragma unroll
    for (int k = 0; k < kSamplerTerms; ++k)
      if (terms.p[k]) acc += wi[k] * double(terms.p[k][at]);
    out[at] = T(acc);
  }
}
}  // namespace kernels

struct Sampling {
  /// Terms an update may combine: sample, model output, noise and three history buffers.
  static constexpr int sampler_terms = kernels::kSamplerTerms;

  /// out[i, j] = sum_k w[i, k] * terms[k][i, j], summed in double; null terms are skipped and
  /// out may alias any term. w lives in device memory.
  template <class T>
  static void weighted_sum(std::int64_t n, std::int64_t d, const double* w, std::array<const T*, sampler_terms> terms,
                           T* out) {
    kernels::SamplerTerms<T> t{};
    for (int k = 0; k < sampler_terms; ++k) t.p[k] = terms[k];
    kernels::weighted_sum<<<blocks_for(n * d), 256, 0, Context::current().stream()>>>(n, d, w, t, out);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
};

}  // namespace progdiff::backend::cuda

#pragma once
// Kernels of the samplers on the CUDA back end, the twin of backend/cpu/sampling.hpp: the
// per-sample weighted sum of a sampler update and per-sample Philox noise, each one launch
// for the whole batch.
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <vector>

#include "progdiff/backend/cuda/check.cuh"
#include "progdiff/backend/cuda/context.cuh"
#include "progdiff/backend/cuda/memory.cuh"
#include "progdiff/backend/math/philox.hpp"

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
// x: [rows, d]; stream_offset: [rows, 2] = (stream, first index) of each row.
template <class T>
__global__ void normal_rows(long long rows, long long d, unsigned long long seed,
                            const unsigned long long* stream_offset, T* x) {
  for (long long at = blockIdx.x * (long long)blockDim.x + threadIdx.x; at < rows * d;
       at += (long long)gridDim.x * blockDim.x) {
    const long long r = at / d;
    x[at] = math::philox_normal<T>(seed, stream_offset[2 * r], stream_offset[2 * r + 1] + (at - r * d));
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
    if (n * d == 0) return;
    kernels::SamplerTerms<T> t{};
    for (int k = 0; k < sampler_terms; ++k) t.p[k] = terms[k];
    kernels::weighted_sum<<<blocks_for(n * d), 256, 0, Context::current().stream()>>>(n, d, w, t, out);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }

  /// Row r of x [rows, d] (device) gets the standard normals (seed, streams[r]) at indices
  /// offsets[r] .. offsets[r] + d - 1, the numbers of the CPU back end. streams and offsets
  /// are host arrays; they travel to the device in one copy, and the rows in one launch.
  template <class T>
  static void normal_rows(std::int64_t rows, std::int64_t d, std::uint64_t seed, const std::uint64_t* streams,
                          const std::uint64_t* offsets, T* x) {
    if (rows * d == 0) return;
    std::vector<unsigned long long> host(static_cast<std::size_t>(2 * rows));
    for (std::int64_t r = 0; r < rows; ++r) {
      host[static_cast<std::size_t>(2 * r)] = streams[r];
      host[static_cast<std::size_t>(2 * r + 1)] = offsets[r];
    }
    auto s = Context::current().stream();
    auto* dev = Memory::allocate<unsigned long long>(host.size());
    // From pageable memory the copy is staged before cudaMemcpyAsync returns, so `host` may
    // go out of scope; the block returns to the pool in stream order.
    PROGDIFF_CUDA_CHECK(
        cudaMemcpyAsync(dev, host.data(), host.size() * sizeof(unsigned long long), cudaMemcpyHostToDevice, s));
    kernels::normal_rows<<<blocks_for(rows * d), 256, 0, s>>>(rows, d, seed, dev, x);
    PROGDIFF_CUDA_CHECK_LAUNCH();
    Memory::deallocate(dev, host.size());
  }
};

}  // namespace progdiff::backend::cuda

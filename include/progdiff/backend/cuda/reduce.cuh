#pragma once
// Block-wide sum in double: every thread passes its partial sum, every thread gets the total.
#include <cuda_runtime.h>

namespace progdiff::backend::cuda {

inline constexpr unsigned kReduceThreads = 256;

__device__ inline double block_sum(double value) {
  __shared__ double partial[32];
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  double total = 0.0;
  const unsigned warps = (blockDim.x + 31) / 32;
  for (unsigned w = 0; w < warps; ++w) total += partial[w];
  return total;
}

__device__ inline double block_max(double value) {
  __shared__ double partial[32];
  for (int offset = 16; offset > 0; offset /= 2) value = fmax(value, __shfl_down_sync(0xffffffffu, value, offset));
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  double m = partial[0];
  const unsigned warps = (blockDim.x + 31) / 32;
  for (unsigned w = 1; w < warps; ++w) m = fmax(m, partial[w]);
  return m;
}

}  // namespace progdiff::backend::cuda

#pragma once
// The CUDA back end: cuBLAS GEMM, kernels over the shared math, a caching device pool, and a
// current stream per host thread. Include from .cu files compiled by nvcc.
#include "progdiff/backend/backend.hpp"
#include "progdiff/backend/cuda/conv.cuh"
#include "progdiff/backend/cuda/elementwise.cuh"
#include "progdiff/backend/cuda/gemm.cuh"
#include "progdiff/backend/cuda/memory.cuh"
#include "progdiff/backend/cuda/normalization.cuh"
#include "progdiff/backend/cuda/optimal_denoiser.cuh"
#include "progdiff/backend/cuda/sampling.cuh"

namespace progdiff::backend {

struct Cuda : cuda::Memory,
              cuda::Gemm,
              cuda::Elementwise,
              cuda::Normalization,
              cuda::Conv,
              cuda::Sampling,
              cuda::OptimalDenoiserKernels {
  static constexpr const char* name() { return "cuda"; }
  static constexpr bool host_accessible = false;

  /// Number of visible devices; 0 where there is no GPU or no driver (never throws).
  static int device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error
      return 0;
    }
    return count;
  }
};

static_assert(check_backend<Cuda>());

}  // namespace progdiff::backend

#pragma once
// Device kernels of the optimal denoiser (group/optimal_denoiser.hpp, Prop. 1 eq. 4): squared
// row norms in double and the Gaussian softmax over the data points, one block per row, so
// the dot products from cuBLAS never leave the device.
#include <cuda_runtime.h>

#include <cstdint>

#include "progdiff/backend/cuda/check.cuh"
#include "progdiff/backend/cuda/context.cuh"
#include "progdiff/backend/cuda/reduce.cuh"
#include "progdiff/backend/math/optimal_denoiser.hpp"

namespace progdiff::backend::cuda {

namespace kernels {
// Block per row: out[r] = sum_j x[r, j]^2 in double.
template <class T>
__global__ void row_sq_norms(long long d, const T* x, double* out) {
  const T* row = x + blockIdx.x * d;
  double s = 0.0;
  for (long long j = threadIdx.x; j < d; j += blockDim.x) s += double(row[j]) * double(row[j]);
  s = block_sum(s);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}
// Block per row r: w[r, :] holds x_r . y_i on entry and the softmax of the logits on exit;
// the logits are recomputed in each pass rather than stored (three reads of one row), and
// each thread overwrites only the entries it reads.
template <class T>
__global__ void gaussian_softmax_rows(long long n, const double* xx, const double* scale_sigma, const double* yy,
                                      T* w) {
  const long long r = blockIdx.x;
  T* row = w + r * n;
  const double s = scale_sigma[2 * r], sg = scale_sigma[2 * r + 1], x2 = xx[r];
  const double inv = 1.0 / (2.0 * s * s * sg * sg);
  double top = -INFINITY;
  for (long long i = threadIdx.x; i < n; i += blockDim.x)
    top = fmax(top, math::gaussian_logit(x2, double(row[i]), yy[i], s, inv));
  top = block_max(top);
  double total = 0.0;
  for (long long i = threadIdx.x; i < n; i += blockDim.x)
    total += exp(math::gaussian_logit(x2, double(row[i]), yy[i], s, inv) - top);
  const double norm = 1.0 / block_sum(total);
  for (long long i = threadIdx.x; i < n; i += blockDim.x)
    row[i] = T(exp(math::gaussian_logit(x2, double(row[i]), yy[i], s, inv) - top) * norm);
}
}  // namespace kernels

struct OptimalDenoiserKernels {
  /// out[r] = |x[r, :]|^2 in double; x: [rows, d], out: [rows] (device).
  template <class T>
  static void row_sq_norms(std::int64_t rows, std::int64_t d, const T* x, double* out) {
    if (rows == 0) return;
    kernels::row_sq_norms<<<unsigned(rows), kReduceThreads, 0, Context::current().stream()>>>(d, x, out);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  /// w: [rows, n], the dots x_r . y_i on entry, the weights of eq. 4 on exit; xx: [rows] = |x_r|^2,
  /// scale_sigma: [rows, 2], yy: [n] = |y_i|^2 (all device memory).
  template <class T>
  static void gaussian_softmax_rows(std::int64_t rows, std::int64_t n, const double* xx, const double* scale_sigma,
                                    const double* yy, T* w) {
    if (rows == 0) return;
    kernels::gaussian_softmax_rows<<<unsigned(rows), kReduceThreads, 0, Context::current().stream()>>>(
        n, xx, scale_sigma, yy, w);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
};

}  // namespace progdiff::backend::cuda

#pragma once
// GroupNorm and row-softmax kernels of the CUDA back end: one thread block per group or row,
// double-precision block sums, the per-element formulas of progdiff/backend/math.
#include <cuda_runtime.h>

#include <cstdint>

#include "progdiff/backend/cuda/check.cuh"
#include "progdiff/backend/cuda/context.cuh"
#include "progdiff/backend/cuda/reduce.cuh"
#include "progdiff/backend/math/group_norm.hpp"

namespace progdiff::backend::cuda {

namespace kernels {
// Block (n, g): x, y: [N, C, HW]; mean, rstd: [N, G]
template <class T>
__global__ void group_norm_forward(long long c, long long hw, long long groups, double eps, const T* x, const T* gamma,
                                   const T* beta, T* y, T* mean, T* rstd) {
  const long long ng = blockIdx.x, n = ng / groups, g = ng % groups, cpg = c / groups, count = cpg * hw;
  const long long base = (n * c + g * cpg) * hw;
  double s = 0.0;
  for (long long i = threadIdx.x; i < count; i += blockDim.x) s += double(x[base + i]);
  const double mu = block_sum(s) / double(count);
  double v = 0.0;
  for (long long i = threadIdx.x; i < count; i += blockDim.x) {
    const double d = double(x[base + i]) - mu;
    v += d * d;
  }
  const double rs = 1.0 / sqrt(block_sum(v) / double(count) + eps);
  if (threadIdx.x == 0) {
    mean[ng] = T(mu);
    rstd[ng] = T(rs);
  }
  for (long long i = threadIdx.x; i < count; i += blockDim.x) {
    const long long ch = g * cpg + i / hw;
    y[base + i] = T((double(x[base + i]) - mu) * rs * double(gamma[ch]) + double(beta[ch]));
  }
}
// Block per channel: dgamma, dbeta accumulated.
template <class T>
__global__ void group_norm_param_grad(long long n, long long c, long long hw, long long groups, const T* x, const T* dy,
                                      const T* mean, const T* rstd, T* dgamma, T* dbeta) {
  const long long ch = blockIdx.x, g = ch / (c / groups);
  double sg = 0.0, sb = 0.0;
  for (long long i = threadIdx.x; i < n * hw; i += blockDim.x) {
    const long long s = i / hw, idx = (s * c + ch) * hw + i % hw;
    const double d = double(dy[idx]);
    sg += d * (double(x[idx]) - double(mean[s * groups + g])) * double(rstd[s * groups + g]);
    sb += d;
  }
  sg = block_sum(sg);
  sb = block_sum(sb);
  if (threadIdx.x == 0) {
    dgamma[ch] += T(sg);
    dbeta[ch] += T(sb);
  }
}
// Block (n, g): dx assigned.
template <class T>
__global__ void group_norm_input_grad(long long c, long long hw, long long groups, const T* x, const T* dy,
                                      const T* mean, const T* rstd, const T* gamma, T* dx) {
  const long long ng = blockIdx.x, n = ng / groups, g = ng % groups, cpg = c / groups, count = cpg * hw;
  const long long base = (n * c + g * cpg) * hw;
  const double mu = double(mean[ng]), rs = double(rstd[ng]);
  double sg = 0.0, sgx = 0.0;
  for (long long i = threadIdx.x; i < count; i += blockDim.x) {
    const double gv = double(dy[base + i]) * double(gamma[g * cpg + i / hw]);
    sg += gv;
    sgx += gv * (double(x[base + i]) - mu) * rs;
  }
  const double mean_g = block_sum(sg) / double(count), mean_gx = block_sum(sgx) / double(count);
  for (long long i = threadIdx.x; i < count; i += blockDim.x) {
    const double gv = double(dy[base + i]) * double(gamma[g * cpg + i / hw]);
    dx[base + i] = T(math::group_norm_dx(gv, (double(x[base + i]) - mu) * rs, rs, mean_g, mean_gx));
  }
}
// Block per row: y = softmax(scale x).
template <class T>
__global__ void softmax_rows(long long cols, T scale, const T* x, T* y) {
  const T* xr = x + blockIdx.x * cols;
  T* yr = y + blockIdx.x * cols;
  double m = -INFINITY;
  for (long long i = threadIdx.x; i < cols; i += blockDim.x) m = fmax(m, double(xr[i] * scale));
  m = block_max(m);
  double s = 0.0;
  for (long long i = threadIdx.x; i < cols; i += blockDim.x) s += exp(double(xr[i] * scale) - m);
  const double inv = 1.0 / block_sum(s);
  for (long long i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = T(exp(double(xr[i] * scale) - m) * inv);
}
// Block per row: dx = scale y (dy - sum(dy y)).
template <class T>
__global__ void softmax_rows_backward(long long cols, T scale, const T* y, const T* dy, T* dx) {
  const long long off = blockIdx.x * cols;
  double d = 0.0;
  for (long long i = threadIdx.x; i < cols; i += blockDim.x) d += double(dy[off + i]) * double(y[off + i]);
  d = block_sum(d);
  for (long long i = threadIdx.x; i < cols; i += blockDim.x)
    dx[off + i] = T(double(scale) * double(y[off + i]) * (double(dy[off + i]) - d));
}
}  // namespace kernels

struct Normalization {
  template <class T>
  static void group_norm_forward(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups, double eps,
                                 const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd) {
    kernels::group_norm_forward<<<unsigned(n * groups), kReduceThreads, 0, Context::current().stream()>>>(
        c, hw, groups, eps, x, gamma, beta, y, mean, rstd);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void group_norm_backward(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups, const T* x,
                                  const T* dy, const T* mean, const T* rstd, const T* gamma, T* dx, T* dgamma,
                                  T* dbeta) {
    auto s = Context::current().stream();
    kernels::group_norm_param_grad<<<unsigned(c), kReduceThreads, 0, s>>>(n, c, hw, groups, x, dy, mean, rstd, dgamma,
                                                                          dbeta);
    PROGDIFF_CUDA_CHECK_LAUNCH();
    kernels::group_norm_input_grad<<<unsigned(n * groups), kReduceThreads, 0, s>>>(c, hw, groups, x, dy, mean, rstd,
                                                                                   gamma, dx);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void softmax_rows(std::int64_t rows, std::int64_t cols, T scale, const T* x, T* y) {
    kernels::softmax_rows<<<unsigned(rows), kReduceThreads, 0, Context::current().stream()>>>(cols, scale, x, y);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void softmax_rows_backward(std::int64_t rows, std::int64_t cols, T scale, const T* y, const T* dy, T* dx) {
    kernels::softmax_rows_backward<<<unsigned(rows), kReduceThreads, 0, Context::current().stream()>>>(cols, scale, y,
                                                                                                       dy, dx);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
};

}  // namespace progdiff::backend::cuda

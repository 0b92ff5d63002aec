#pragma once
// Element-wise kernels and reductions of the CUDA back end: grid-stride loops over the shared
// math in progdiff/backend/math, the same functions the CPU back end runs.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "progdiff/backend/cuda/check.cuh"
#include "progdiff/backend/cuda/context.cuh"
#include "progdiff/backend/cuda/reduce.cuh"
#include "progdiff/backend/math/activation.hpp"
#include "progdiff/backend/math/adam.hpp"
#include "progdiff/backend/math/embedding.hpp"
#include "progdiff/backend/math/philox.hpp"

namespace progdiff::backend::cuda {

#define PROGDIFF_GRID_STRIDE(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

namespace kernels {
template <class T>
__global__ void axpy(long long n, T alpha, const T* x, T* y) {
  PROGDIFF_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}
template <class T>
__global__ void add(long long n, const T* a, const T* b, T* out) {
  PROGDIFF_GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
template <class T>
__global__ void mul(long long n, const T* a, const T* b, T* out) {
  PROGDIFF_GRID_STRIDE(i, n) out[i] = a[i] * b[i];
}
template <class T>
__global__ void scale(long long n, T alpha, T* x) {
  PROGDIFF_GRID_STRIDE(i, n) x[i] *= alpha;
}
template <class T>
__global__ void add_2d(long long rows, long long cols, const T* src, long long lds, T* dst, long long ldd) {
  PROGDIFF_GRID_STRIDE(i, rows * cols) dst[(i / cols) * ldd + i % cols] += src[(i / cols) * lds + i % cols];
}
template <class T>
__global__ void sum(long long n, const T* x, const T* y, double* out) {
  double s = 0.0;
  PROGDIFF_GRID_STRIDE(i, n) s += y ? double(x[i]) * double(y[i]) : double(x[i]);
  s = block_sum(s);
  if (threadIdx.x == 0) atomicAdd(out, s);
}
template <class T>
__global__ void count_nonfinite(long long n, const T* x, unsigned long long* out) {
  PROGDIFF_GRID_STRIDE(i, n) if (!isfinite(double(x[i]))) atomicAdd(out, 1ull);
}
template <class T>
__global__ void silu_forward(long long n, const T* x, T* y) {
  PROGDIFF_GRID_STRIDE(i, n) y[i] = math::silu(x[i]);
}
template <class T>
__global__ void silu_backward(long long n, const T* x, const T* dy, T* dx) {
  PROGDIFF_GRID_STRIDE(i, n) dx[i] = dy[i] * math::silu_derivative(x[i]);
}
// y: [N, C, HW]; per_sample selects e[n, c] over bias[c]
template <class T>
__global__ void add_channel(long long n, long long c, long long hw, const T* e, bool per_sample, T* y) {
  PROGDIFF_GRID_STRIDE(i, n * c * hw) {
    const long long row = i / hw;
    y[i] += per_sample ? e[row] : e[row % c];
  }
}
// One block per channel: dbias[c] += sum over n and hw.
template <class T>
__global__ void channel_bias_grad(long long n, long long c, long long hw, const T* dy, T* dbias) {
  const long long ch = blockIdx.x;
  double s = 0.0;
  for (long long i = threadIdx.x; i < n * hw; i += blockDim.x) s += double(dy[((i / hw) * c + ch) * hw + i % hw]);
  s = block_sum(s);
  if (threadIdx.x == 0) dbias[ch] += T(s);
}
// One block per (n, c) row: de[n, c] = sum over hw.
template <class T>
__global__ void sample_channel_sum(long long hw, const T* dy, T* de) {
  const long long row = blockIdx.x;
  double s = 0.0;
  for (long long k = threadIdx.x; k < hw; k += blockDim.x) s += double(dy[row * hw + k]);
  s = block_sum(s);
  if (threadIdx.x == 0) de[row] = T(s);
}
template <class T>
__global__ void upsample_forward(long long nc, long long h, long long w, const T* x, T* y) {
  PROGDIFF_GRID_STRIDE(i, nc * 4 * h * w) {
    const long long j = i % (2 * w), r = (i / (2 * w)) % (2 * h), p = i / (4 * h * w);
    y[i] = x[(p * h + r / 2) * w + j / 2];
  }
}
template <class T>
__global__ void upsample_backward(long long nc, long long h, long long w, const T* dy, T* dx) {
  PROGDIFF_GRID_STRIDE(i, nc * h * w) {
    const long long j = i % w, r = (i / w) % h, p = i / (h * w);
    const T* d = dy + (p * 2 * h + 2 * r) * 2 * w + 2 * j;
    dx[i] = d[0] + d[1] + d[2 * w] + d[2 * w + 1];
  }
}
template <class T>
__global__ void timestep_embedding(long long n, long long dim, const T* t, T* out, double max_period, double shift) {
  PROGDIFF_GRID_STRIDE(i, n * dim) {
    const long long row = i / dim, k = i % dim;
    out[i] = T(math::timestep_embedding_value(double(t[row]), k, dim, max_period, shift));
  }
}
template <class T>
__global__ void dropout(long long n, double p, unsigned long long seed, unsigned long long stream,
                        unsigned long long offset, const T* x, T* y) {
  const T keep_scale = T(1.0 / (1.0 - p));
  PROGDIFF_GRID_STRIDE(i, n) y[i] = math::philox_uniform(seed, stream, offset + i) > p ? x[i] * keep_scale : T(0);
}
template <class T>
__global__ void normal(long long n, unsigned long long seed, unsigned long long stream, unsigned long long offset,
                       T* x) {
  PROGDIFF_GRID_STRIDE(i, n) x[i] = math::philox_normal<T>(seed, stream, offset + i);
}
template <class T>
__global__ void adamw(long long n, T* param, const T* grad, T* m, T* v, math::AdamHyper hyper, long long step) {
  PROGDIFF_GRID_STRIDE(i, n) math::adamw_update(param[i], grad[i], m[i], v[i], hyper, step);
}
}  // namespace kernels

struct Elementwise {
  static cudaStream_t stream() { return Context::current().stream(); }

  template <class T>
  static void axpy(std::size_t n, T alpha, const T* x, T* y) {
    kernels::axpy<<<blocks_for(n), 256, 0, stream()>>>((long long)n, alpha, x, y);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void add(std::size_t n, const T* a, const T* b, T* out) {
    kernels::add<<<blocks_for(n), 256, 0, stream()>>>((long long)n, a, b, out);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void mul(std::size_t n, const T* a, const T* b, T* out) {
    kernels::mul<<<blocks_for(n), 256, 0, stream()>>>((long long)n, a, b, out);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void scale(std::size_t n, T alpha, T* x) {
    kernels::scale<<<blocks_for(n), 256, 0, stream()>>>((long long)n, alpha, x);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void add_2d(std::int64_t rows, std::int64_t cols, const T* src, std::int64_t lds, T* dst, std::int64_t ldd) {
    kernels::add_2d<<<blocks_for(rows * cols), 256, 0, stream()>>>(rows, cols, src, lds, dst, ldd);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static double sum(std::size_t n, const T* x) {
    return reduce(n, x, static_cast<const T*>(nullptr));
  }
  template <class T>
  static double dot(std::size_t n, const T* x, const T* y) {
    return reduce(n, x, y);
  }
  template <class T>
  static bool all_finite(std::size_t n, const T* x) {
    unsigned long long* d = nullptr;
    unsigned long long h = 0;
    PROGDIFF_CUDA_CHECK(cudaMallocAsync(&d, sizeof(h), stream()));
    PROGDIFF_CUDA_CHECK(cudaMemsetAsync(d, 0, sizeof(h), stream()));
    kernels::count_nonfinite<<<blocks_for(n), 256, 0, stream()>>>((long long)n, x, d);
    PROGDIFF_CUDA_CHECK_LAUNCH();
    PROGDIFF_CUDA_CHECK(cudaMemcpyAsync(&h, d, sizeof(h), cudaMemcpyDeviceToHost, stream()));
    PROGDIFF_CUDA_CHECK(cudaFreeAsync(d, stream()));
    PROGDIFF_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return h == 0;
  }
  template <class T>
  static void silu_forward(std::size_t n, const T* x, T* y) {
    kernels::silu_forward<<<blocks_for(n), 256, 0, stream()>>>((long long)n, x, y);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void silu_backward(std::size_t n, const T* x, const T* dy, T* dx) {
    kernels::silu_backward<<<blocks_for(n), 256, 0, stream()>>>((long long)n, x, dy, dx);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void add_channel_bias(std::int64_t n, std::int64_t c, std::int64_t hw, const T* bias, T* y) {
    kernels::add_channel<<<blocks_for(n * c * hw), 256, 0, stream()>>>(n, c, hw, bias, false, y);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void channel_bias_grad(std::int64_t n, std::int64_t c, std::int64_t hw, const T* dy, T* dbias) {
    kernels::channel_bias_grad<<<unsigned(c), kReduceThreads, 0, stream()>>>(n, c, hw, dy, dbias);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void add_sample_channel(std::int64_t n, std::int64_t c, std::int64_t hw, const T* e, T* y) {
    kernels::add_channel<<<blocks_for(n * c * hw), 256, 0, stream()>>>(n, c, hw, e, true, y);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void sample_channel_sum(std::int64_t n, std::int64_t c, std::int64_t hw, const T* dy, T* de) {
    kernels::sample_channel_sum<<<unsigned(n * c), kReduceThreads, 0, stream()>>>(hw, dy, de);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void upsample_nearest2x_forward(std::int64_t nc, std::int64_t h, std::int64_t w, const T* x, T* y) {
    kernels::upsample_forward<<<blocks_for(4 * nc * h * w), 256, 0, stream()>>>(nc, h, w, x, y);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void upsample_nearest2x_backward(std::int64_t nc, std::int64_t h, std::int64_t w, const T* dy, T* dx) {
    kernels::upsample_backward<<<blocks_for(nc * h * w), 256, 0, stream()>>>(nc, h, w, dy, dx);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void timestep_embedding(std::int64_t n, std::int64_t dim, const T* t, T* out, double max_period,
                                 double shift) {
    kernels::timestep_embedding<<<blocks_for(n * dim), 256, 0, stream()>>>(n, dim, t, out, max_period, shift);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void dropout(std::size_t n, double p, std::uint64_t seed, std::uint64_t stream_id, std::uint64_t offset,
                      const T* x, T* y) {
    kernels::dropout<<<blocks_for(n), 256, 0, stream()>>>((long long)n, p, seed, stream_id, offset, x, y);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void normal(std::size_t n, std::uint64_t seed, std::uint64_t stream_id, std::uint64_t offset, T* x) {
    kernels::normal<<<blocks_for(n), 256, 0, stream()>>>((long long)n, seed, stream_id, offset, x);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void adamw(std::size_t n, T* param, const T* grad, T* m, T* v, const math::AdamHyper& hyper, long long step) {
    kernels::adamw<<<blocks_for(n), 256, 0, stream()>>>((long long)n, param, grad, m, v, hyper, step);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }

 private:
  template <class T>
  static double reduce(std::size_t n, const T* x, const T* y) {
    double* d = nullptr;
    double h = 0.0;
    PROGDIFF_CUDA_CHECK(cudaMallocAsync(&d, sizeof(double), stream()));
    PROGDIFF_CUDA_CHECK(cudaMemsetAsync(d, 0, sizeof(double), stream()));
    kernels::sum<<<blocks_for(n, kReduceThreads), kReduceThreads, 0, stream()>>>((long long)n, x, y, d);
    PROGDIFF_CUDA_CHECK_LAUNCH();
    PROGDIFF_CUDA_CHECK(cudaMemcpyAsync(&h, d, sizeof(double), cudaMemcpyDeviceToHost, stream()));
    PROGDIFF_CUDA_CHECK(cudaFreeAsync(d, stream()));
    PROGDIFF_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return h;
  }
};

#undef PROGDIFF_GRID_STRIDE

}  // namespace progdiff::backend::cuda

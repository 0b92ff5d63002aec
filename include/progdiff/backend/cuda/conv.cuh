#pragma once
// 2-D convolution on the GPU: im2col into a pooled workspace, then one strided-batched cuBLAS
// GEMM over a chunk of samples. A 1x1 stride-1 convolution skips im2col.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cuda/gemm.cuh"
#include "progdiff/backend/cuda/memory.cuh"

namespace progdiff::backend::cuda {

namespace kernels {
// x: [chunk, c_in, h, w] -> col: [chunk, c_in*kh*kw, oh*ow]
template <class T>
__global__ void im2col(ConvGeometry g, long long chunk, const T* x, T* col) {
  const long long oh = g.out_h(), ow = g.out_w(), k = g.patch();
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < chunk * k * oh * ow;
       i += (long long)gridDim.x * blockDim.x) {
    const long long j = i % ow, r = (i / ow) % oh, row = (i / (ow * oh)) % k, s = i / (ow * oh * k);
    const long long kj = row % g.kw, ki = (row / g.kw) % g.kh, c = row / (g.kw * g.kh);
    const long long yi = r * g.stride - g.pad + ki, xj = j * g.stride - g.pad + kj;
    col[i] = (yi >= 0 && yi < g.h && xj >= 0 && xj < g.w) ? x[((s * g.c_in + c) * g.h + yi) * g.w + xj] : T(0);
  }
}
// Gathers, for every input pixel, the column entries that read it: no atomics needed.
template <class T>
__global__ void col2im(ConvGeometry g, long long chunk, const T* col, T* dx) {
  const long long oh = g.out_h(), ow = g.out_w(), k = g.patch();
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < chunk * g.c_in * g.h * g.w;
       i += (long long)gridDim.x * blockDim.x) {
    const long long xj = i % g.w, yi = (i / g.w) % g.h, c = (i / (g.w * g.h)) % g.c_in, s = i / (g.w * g.h * g.c_in);
    double acc = 0.0;
    for (long long ki = 0; ki < g.kh; ++ki) {
      const long long ry = yi + g.pad - ki;
      if (ry < 0 || ry % g.stride) continue;
      const long long r = ry / g.stride;
      if (r >= oh) continue;
      for (long long kj = 0; kj < g.kw; ++kj) {
        const long long rx = xj + g.pad - kj;
        if (rx < 0 || rx % g.stride) continue;
        const long long j = rx / g.stride;
        if (j >= ow) continue;
        acc += double(col[((s * k + (c * g.kh + ki) * g.kw + kj) * oh + r) * ow + j]);
      }
    }
    dx[i] = T(acc);
  }
}
}  // namespace kernels

struct Conv {
  static bool is_pointwise(const ConvGeometry& g) { return g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0; }

  /// Samples per im2col chunk: the workspace stays under about 256 MiB.
  template <class T>
  static std::int64_t chunk_size(const ConvGeometry& g) {
    const std::int64_t per_sample = g.patch() * g.out_hw() * std::int64_t(sizeof(T));
    return std::max<std::int64_t>(1, std::min<std::int64_t>(g.n, (std::int64_t(256) << 20) / per_sample));
  }

  template <class T>
  static void conv2d_forward(const ConvGeometry& g, const T* x, const T* weight, T* y) {
    const std::int64_t ohw = g.out_hw(), k = g.patch(), in_size = g.c_in * g.h * g.w;
    if (is_pointwise(g)) {
      Gemm::gemm_strided_batched<T>(Trans::No, Trans::No, g.c_out, ohw, k, T(1), weight, k, 0, x, ohw, in_size, T(0), y,
                                    ohw, g.c_out * ohw, g.n);
      return;
    }
    const std::int64_t chunk = chunk_size<T>(g);
    T* col = Memory::allocate<T>(std::size_t(chunk * k * ohw));
    for (std::int64_t s = 0; s < g.n; s += chunk) {
      const std::int64_t m = std::min(chunk, g.n - s);
      kernels::im2col<<<blocks_for(m * k * ohw), 256, 0, Context::current().stream()>>>(g, m, x + s * in_size, col);
      PROGDIFF_CUDA_CHECK_LAUNCH();
      Gemm::gemm_strided_batched<T>(Trans::No, Trans::No, g.c_out, ohw, k, T(1), weight, k, 0, col, ohw, k * ohw, T(0),
                                    y + s * g.c_out * ohw, ohw, g.c_out * ohw, m);
    }
    Memory::deallocate(col, std::size_t(chunk * k * ohw));
  }

  template <class T>
  static void conv2d_backward_data(const ConvGeometry& g, const T* dy, const T* weight, T* dx) {
    const std::int64_t ohw = g.out_hw(), k = g.patch(), in_size = g.c_in * g.h * g.w;
    if (is_pointwise(g)) {
      Gemm::gemm_strided_batched<T>(Trans::Yes, Trans::No, k, ohw, g.c_out, T(1), weight, k, 0, dy, ohw, g.c_out * ohw,
                                    T(0), dx, ohw, in_size, g.n);
      return;
    }
    const std::int64_t chunk = chunk_size<T>(g);
    T* col = Memory::allocate<T>(std::size_t(chunk * k * ohw));
    for (std::int64_t s = 0; s < g.n; s += chunk) {
      const std::int64_t m = std::min(chunk, g.n - s);
      Gemm::gemm_strided_batched<T>(Trans::Yes, Trans::No, k, ohw, g.c_out, T(1), weight, k, 0, dy + s * g.c_out * ohw,
                                    ohw, g.c_out * ohw, T(0), col, ohw, k * ohw, m);
      kernels::col2im<<<blocks_for(m * in_size), 256, 0, Context::current().stream()>>>(g, m, col, dx + s * in_size);
      PROGDIFF_CUDA_CHECK_LAUNCH();
    }
    Memory::deallocate(col, std::size_t(chunk * k * ohw));
  }

  /// dweight += sum over samples of dy_s col_s^T (one GEMM per sample, accumulating).
  template <class T>
  static void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dweight) {
    const std::int64_t ohw = g.out_hw(), k = g.patch(), in_size = g.c_in * g.h * g.w;
    const std::int64_t chunk = is_pointwise(g) ? g.n : chunk_size<T>(g);
    T* col = is_pointwise(g) ? nullptr : Memory::allocate<T>(std::size_t(chunk * k * ohw));
    for (std::int64_t s = 0; s < g.n; s += chunk) {
      const std::int64_t m = std::min(chunk, g.n - s);
      const T* cols = x + s * in_size;
      if (col) {
        kernels::im2col<<<blocks_for(m * k * ohw), 256, 0, Context::current().stream()>>>(g, m, x + s * in_size, col);
        PROGDIFF_CUDA_CHECK_LAUNCH();
        cols = col;
      }
      const std::int64_t col_stride = col ? k * ohw : in_size;
      for (std::int64_t i = 0; i < m; ++i)
        Gemm::gemm<T>(Trans::No, Trans::Yes, g.c_out, k, ohw, T(1), dy + (s + i) * g.c_out * ohw, ohw,
                      cols + i * col_stride, ohw, T(1), dweight, k);
    }
    if (col) Memory::deallocate(col, std::size_t(chunk * k * ohw));
  }
};

}  // namespace progdiff::backend::cuda

#pragma once
// Device memory for the CUDA back end: cudaMalloc behind a size-bucketed cache (never
// managed memory), so a training step reuses its buffers instead of calling cudaMalloc and
// cudaFree, which synchronize the device, every step.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "progdiff/backend/block_cache.hpp"

#include "progdiff/backend/cuda/check.cuh"
#include "progdiff/backend/cuda/context.cuh"

namespace progdiff::backend::cuda {

/// cudaMalloc'd device blocks (never managed memory).
struct DeviceMemory {
  static void* allocate(std::size_t bytes) {
    void* p = nullptr;
    PROGDIFF_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  static void release(void* p) { cudaFree(p); }
};

// Freed device blocks are all kept (release_all returns them), as a training step reuses them.
using DevicePool = backend::BlockCache<DeviceMemory, 256, SIZE_MAX>;

template <class T>
__global__ void fill_kernel(T* p, long long n, T value) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    p[i] = value;
}

struct Memory {
  template <class T>
  static T* allocate(std::size_t n) {
    return static_cast<T*>(DevicePool::instance().take(n * sizeof(T)));
  }
  // A freed block may still be read by queued kernels; all work runs on the one current
  // stream, so a later allocation's kernels are ordered after them.
  template <class T>
  static void deallocate(T* p, std::size_t n) {
    DevicePool::instance().give(p, n * sizeof(T));
  }
  template <class T>
  static void copy_from_host(T* dst, const T* src, std::size_t n) {
    auto s = Context::current().stream();
    PROGDIFF_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyHostToDevice, s));
    PROGDIFF_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  template <class T>
  static void copy_to_host(T* dst, const T* src, std::size_t n) {
    auto s = Context::current().stream();
    PROGDIFF_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToHost, s));
    PROGDIFF_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  template <class T>
  static void copy(T* dst, const T* src, std::size_t n) {
    PROGDIFF_CUDA_CHECK(
        cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToDevice, Context::current().stream()));
  }
  template <class T>
  static void fill(T* p, std::size_t n, T value) {
    if (!n) return;
    fill_kernel<<<blocks_for(n), 256, 0, Context::current().stream()>>>(p, static_cast<long long>(n), value);
    PROGDIFF_CUDA_CHECK_LAUNCH();
  }
  template <class T>
  static void copy_2d(std::int64_t rows, std::int64_t cols, const T* src, std::int64_t lds, T* dst, std::int64_t ldd) {
    PROGDIFF_CUDA_CHECK(cudaMemcpy2DAsync(dst, ldd * sizeof(T), src, lds * sizeof(T), cols * sizeof(T), rows,
                                          cudaMemcpyDeviceToDevice, Context::current().stream()));
  }
  static void synchronize() { PROGDIFF_CUDA_CHECK(cudaStreamSynchronize(Context::current().stream())); }
};

}  // namespace progdiff::backend::cuda

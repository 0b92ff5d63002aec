#pragma once
// Device memory for the CUDA back end: cudaMalloc behind a size-bucketed cache (never
// managed memory), so a training step reuses its buffers instead of calling cudaMalloc and
// cudaFree, which synchronize the device, every step.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "progdiff/backend/cuda/check.cuh"
#include "progdiff/backend/cuda/context.cuh"

namespace progdiff::backend::cuda {

class DevicePool {
 public:
  static DevicePool& instance() {
    static DevicePool pool;
    return pool;
  }
  void* take(std::size_t bytes) {
    const std::size_t size = bucket(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        return p;
      }
    }
    void* p = nullptr;
    PROGDIFF_CUDA_CHECK(cudaMalloc(&p, size));
    return p;
  }
  void give(void* p, std::size_t bytes) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    free_[bucket(bytes)].push_back(p);
  }
  /// Frees every cached block (after a synchronize).
  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) cudaFree(p);
    free_.clear();
  }

 private:
  static std::size_t bucket(std::size_t bytes) {
    std::size_t size = (bytes + 255) & ~std::size_t(255);
    if (size <= 4096) return size == 0 ? 256 : size;
    const std::size_t top = std::size_t(1) << (63 - __builtin_clzll(size));
    const std::size_t step = top / 4;
    return (size + step - 1) / step * step;
  }
  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
};

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

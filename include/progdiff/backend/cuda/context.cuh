#pragma once
// The current stream and cuBLAS handle of the calling host thread, created on first use,
// as PyTorch keeps a current stream: layer code never passes them around.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "progdiff/backend/cuda/check.cuh"

namespace progdiff::backend::cuda {

class Context {
 public:
  static Context& current() {
    thread_local Context context;
    return context;
  }

  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }

  /// TF32 tensor-core GEMM for float (faster, about 1e-3 relative error); off by default.
  void set_tf32(bool enabled) {
    PROGDIFF_CUBLAS_CHECK(cublasSetMathMode(cublas_, enabled ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  }

  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() {
    if (cublas_) cublasDestroy(cublas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

 private:
  Context() {
    PROGDIFF_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    PROGDIFF_CUBLAS_CHECK(cublasCreate(&cublas_));
    PROGDIFF_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  }

  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
};

/// Launch shape for a grid-stride loop over n elements.
inline unsigned blocks_for(long long n, unsigned threads = 256) {
  const long long blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

}  // namespace progdiff::backend::cuda

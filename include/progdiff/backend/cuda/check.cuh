#pragma once
// Every CUDA runtime and cuBLAS call goes through these checks: a failure throws
// progdiff::IoError naming the call, the file and the line.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "progdiff/core/error.hpp"

namespace progdiff::backend::cuda {

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    throw IoError(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                  cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw IoError(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                  cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")");
}

}  // namespace progdiff::backend::cuda

#define PROGDIFF_CUDA_CHECK(call) ::progdiff::backend::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define PROGDIFF_CUBLAS_CHECK(call) ::progdiff::backend::cuda::check_cublas((call), #call, __FILE__, __LINE__)
// A kernel launch reports errors through cudaGetLastError.
#define PROGDIFF_CUDA_CHECK_LAUNCH() PROGDIFF_CUDA_CHECK(cudaGetLastError())

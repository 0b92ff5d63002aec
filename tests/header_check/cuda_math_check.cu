// The shared kernel math compiled by nvcc: every function of backend/math/ is instantiated
// in device code for float and double, then the device results are compared with the same
// functions run on the host. Without a GPU the program exits 77 (ctest reports a skip).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>

#include "cuda_math_headers.cuh"

namespace pm = progdiff::math;

constexpr int kValues = 16;

template <class T>
PROGDIFF_HOST_DEVICE void evaluate(T* out) {
  const T xs[8] = {T(-3), T(-0.5), T(0), T(0.25), T(1), T(2.5), T(-1.5), T(4)};
  out[0] = pm::sigmoid(xs[1]);
  out[1] = pm::silu(xs[5]);
  out[2] = pm::silu_derivative(xs[6]);
  const pm::GroupStats stats = pm::group_norm_stats(xs, 8, 1e-5);
  out[3] = static_cast<T>(stats.mean);
  out[4] = static_cast<T>(stats.rstd);
  out[5] = static_cast<T>(pm::group_norm_dx(0.5, -1.0, stats.rstd, 0.1, 0.2));
  T y[8], dx[8];
  pm::softmax_row(xs, y, 8, T(0.5));
  pm::softmax_row_backward(y, xs, dx, 8, T(0.5));
  out[6] = y[7];
  out[7] = dx[2];
  out[8] = static_cast<T>(pm::philox_uniform(7, 3, 11));
  out[9] = pm::philox_normal<T>(7, 3, 12);
  out[10] = pm::philox_normal<T>(7, 3, 13);
  T param = T(0.5), m = T(0.01), v = T(0.002);
  pm::adamw_update(param, T(0.3), m, v, pm::AdamHyper{1e-2, 0.9, 0.999, 1e-8, 0.1}, 4);
  out[11] = param;
  out[12] = m;
  out[13] = v;
  out[14] = T(0);
  out[15] = T(0);
}

template <class T>
__global__ void evaluate_kernel(T* out) {
  evaluate(out);
}

template <class T>
int compare(const char* type_name, double tolerance) {
  T host[kValues], device[kValues];
  evaluate(host);
  T* buffer = nullptr;
  if (cudaMalloc(&buffer, sizeof(device)) != cudaSuccess) return 77;
  evaluate_kernel<T><<<1, 1>>>(buffer);
  const cudaError_t err = cudaMemcpy(device, buffer, sizeof(device), cudaMemcpyDeviceToHost);
  cudaFree(buffer);
  if (err != cudaSuccess) {
    std::printf("%s: kernel failed: %s\n", type_name, cudaGetErrorString(err));
    return 1;
  }
  int failures = 0;
  for (int i = 0; i < kValues; ++i) {
    const double h = static_cast<double>(host[i]), d = static_cast<double>(device[i]);
    if (std::abs(h - d) > tolerance * (1.0 + std::abs(h))) {
      std::printf("%s value %d: host %.9g, device %.9g\n", type_name, i, h, d);
      ++failures;
    }
  }
  return failures ? 1 : 0;
}

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: compiled only\n");
    return 77;
  }
  const int f = compare<float>("float", 1e-5);
  const int d = compare<double>("double", 1e-12);
  if (f == 77 || d == 77) return 77;
  if (f || d) return 1;
  std::printf("backend/math: device results match the host for float and double\n");
  return 0;
}

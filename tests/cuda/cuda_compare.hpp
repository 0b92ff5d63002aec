#pragma once
// What the CUDA tests share: host inputs from Philox, a comparison that prints the worst
// error against its tolerance, and the skip (ctest's code 77) where no GPU is present.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "progdiff/backend/cuda/cuda.cuh"
#include "progdiff/core/random.hpp"

namespace cuda_test {

inline int failures = 0;

inline std::vector<float> random_values(std::size_t n, std::uint64_t stream, float scale = 1.0f) {
  progdiff::Generator gen(2024, stream);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * gen.normal<float>();
  return v;
}

/// Passes when |gpu - cpu| <= tol * max(1, |cpu|) for every element.
template <class T>
void expect_close(const std::string& what, const std::vector<T>& gpu, const std::vector<T>& cpu, double tol) {
  double worst = 0.0;
  for (std::size_t i = 0; i < std::min(cpu.size(), gpu.size()); ++i) {
    const double err = std::fabs(double(gpu[i]) - double(cpu[i])) / std::fmax(1.0, std::fabs(double(cpu[i])));
    worst = std::isnan(err) ? INFINITY : std::fmax(worst, err);
  }
  const bool ok = gpu.size() == cpu.size() && !cpu.empty() && worst <= tol;
  std::printf("%-52s max rel. error %.2e (tolerance %.0e) %s\n", what.c_str(), worst, tol, ok ? "ok" : "FAILED");
  if (!ok) ++failures;
}

inline void expect_true(const std::string& what, bool ok) {
  std::printf("%-52s %s\n", what.c_str(), ok ? "ok" : "FAILED");
  if (!ok) ++failures;
}

/// Exit code of a CUDA test binary when no device is present: ctest counts it as skipped.
inline constexpr int kSkipped = 77;

inline bool skip_without_device(const char* what) {
  if (progdiff::backend::Cuda::device_count() > 0) return false;
  std::printf(
      "SKIPPED: %s: no CUDA device is present (cudaGetDeviceCount reports none); the CUDA back end was "
      "compiled and linked but not run.\n",
      what);
  return true;
}

inline int report() {
  std::printf(failures ? "%d comparisons FAILED\n" : "all comparisons passed\n", failures);
  return failures ? 1 : 0;
}

}  // namespace cuda_test

#pragma once
// The last step of the CPU weight-gradient kernels: each thread has summed its share of the
// samples into a private dW^T [k, c_out]; the threads' sums are added into dW [c_out, k].
#include <omp.h>

#include <cstdint>
#include <vector>
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

/// dweight[c, r] += the sum over threads of partial[t][r * co + c] (null entries skipped), in
/// thread order, so that a given thread count gives the same floats on every run. An orphaned
/// `omp for`: call it from every thread of the parallel region that filled `partial`, after a
/// barrier; it ends with one.
inline void add_transposed_thread_sums(const std::vector<float*>& partial, std::int64_t co, std::int64_t k,
                                       float* dweight) {
#pragma omp for schedule(static)
  for (std::int64_t c = 0; c < co; ++c)
    for (std::int64_t r = 0; r < k; ++r) {
      float sum = 0.0f;
      for (const float* part : partial)
        if (part) sum += part[r * co + c];
      dweight[c * k + r] += sum;
    }
}

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

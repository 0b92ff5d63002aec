#pragma once
// The last step of the Winograd F(2x2, 3x3) weight gradients (detail/winograd_avx512.hpp,
// detail/winograd_backward_weight_avx2.hpp): the 3x3 kernel gradient G^T S G from the 4x4 sum S
// over tiles of (A dy A^T) . (B^T x B), G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::winograd_f2 {

/// dg = G^T s G, in double: s sums a whole batch's tiles, and its terms may cancel.
inline void kernel_gradient(const double s[4][4], double dg[3][3]) {
  double q[3][4];
  for (int j = 0; j < 4; ++j) {
    q[0][j] = s[0][j] + 0.5 * (s[1][j] + s[2][j]);
    q[1][j] = 0.5 * (s[1][j] - s[2][j]);
    q[2][j] = 0.5 * (s[1][j] + s[2][j]) + s[3][j];
  }
  for (int a = 0; a < 3; ++a) {
    dg[a][0] = q[a][0] + 0.5 * (q[a][1] + q[a][2]);
    dg[a][1] = 0.5 * (q[a][1] - q[a][2]);
    dg[a][2] = 0.5 * (q[a][1] + q[a][2]) + q[a][3];
  }
}

}  // namespace progdiff::backend::cpu::winograd_f2
PROGDIFF_KERNELS_END

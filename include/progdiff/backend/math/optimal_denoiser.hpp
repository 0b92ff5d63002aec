#pragma once
// The logit of one data point in the optimal denoiser's softmax (Prop. 1 eq. 4 of the
// multi-stage paper), shared by the back ends:
//   logit_i = -|x - s y_i|^2 / (2 s^2 sigma^2),  |x - s y_i|^2 = |x|^2 - 2 s x.y_i + s^2 |y_i|^2,
// the squared distance clamped at 0 (the expansion may cancel to a tiny negative number).
#include "progdiff/backend/math/host_device.hpp"

namespace progdiff::math {

/// xx = |x|^2, xy = x.y_i, yy = |y_i|^2, s = scale, inv_two_var = 1 / (2 s^2 sigma^2).
PROGDIFF_INLINE double gaussian_logit(double xx, double xy, double yy, double s, double inv_two_var) {
  const double dist = xx - 2.0 * s * xy + s * s * yy;
  return -(dist > 0.0 ? dist : 0.0) * inv_two_var;
}

}  // namespace progdiff::math

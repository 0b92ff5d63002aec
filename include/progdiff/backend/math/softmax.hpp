#pragma once
#include <cmath>
#include <cstdint>

#include "progdiff/backend/math/host_device.hpp"

namespace progdiff::math {

/// y = softmax(scale * x) over one row of `n`, max-subtracted so exp never overflows.
template <class T>
PROGDIFF_INLINE void softmax_row(const T* x, T* y, std::int64_t n, T scale) {
  using std::exp;  // the float overload for float
  T m = x[0] * scale;
  for (std::int64_t i = 1; i < n; ++i) m = x[i] * scale > m ? x[i] * scale : m;
  T sum = T(0);
  for (std::int64_t i = 0; i < n; ++i) {
    y[i] = exp(x[i] * scale - m);
    sum += y[i];
  }
  const T inv = T(1) / sum;
  for (std::int64_t i = 0; i < n; ++i) y[i] *= inv;
}

/// dx = scale * y * (dy - sum(dy * y)) over one row (the gradient of softmax(scale * x)).
template <class T>
PROGDIFF_INLINE void softmax_row_backward(const T* y, const T* dy, T* dx, std::int64_t n, T scale) {
  T dot = T(0);
  for (std::int64_t i = 0; i < n; ++i) dot += dy[i] * y[i];
  for (std::int64_t i = 0; i < n; ++i) dx[i] = scale * y[i] * (dy[i] - dot);
}

}  // namespace progdiff::math

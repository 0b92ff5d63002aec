#pragma once
#include <cmath>

#include "progdiff/backend/math/host_device.hpp"

namespace progdiff::math {

// silu(x) = x * sigmoid(x); written through exp(-|x|) so neither branch overflows.
template <class T>
PROGDIFF_INLINE T sigmoid(T x) {
  using std::exp;  // the float overload for float: no silent double math on host or device
  if (x >= T(0)) {
    const T e = exp(-x);
    return T(1) / (T(1) + e);
  }
  const T e = exp(x);
  return e / (T(1) + e);
}

template <class T>
PROGDIFF_INLINE T silu(T x) {
  return x * sigmoid(x);
}

/// d silu / dx = s + x s (1 - s) with s = sigmoid(x).
template <class T>
PROGDIFF_INLINE T silu_derivative(T x) {
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

}  // namespace progdiff::math

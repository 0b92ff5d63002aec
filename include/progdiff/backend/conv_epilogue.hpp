#pragma once

namespace progdiff {

/// What a fused convolution adds to each output value as it stores it:
///   y[n, c, p] = conv(x, weight)[n, c, p] + bias[c] + sample_bias[n, c] + residual[n, c, p],
/// each term skipped where its pointer is null. A ResBlock's time embedding is a per-sample
/// bias and its skip connection a residual: added in the store, neither costs a pass over y.
template <class T>
struct ConvEpilogue {
  const T* bias = nullptr;         // [C_out]
  const T* sample_bias = nullptr;  // [N, C_out]
  const T* residual = nullptr;     // [N, C_out, H_out, W_out], the shape of y
};

}  // namespace progdiff

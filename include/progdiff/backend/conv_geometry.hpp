#pragma once
#include <cstdint>

#include "progdiff/backend/math/host_device.hpp"

namespace progdiff {

/// Sizes of one 2-D convolution. x: [n, c_in, h, w], weight: [c_out, c_in, kh, kw],
/// y: [n, c_out, out_h, out_w].
struct ConvGeometry {
  std::int64_t n = 1, c_in = 1, h = 1, w = 1;
  std::int64_t c_out = 1, kh = 1, kw = 1;
  std::int64_t stride = 1, pad = 0;

  PROGDIFF_HOST_DEVICE std::int64_t out_h() const { return (h + 2 * pad - kh) / stride + 1; }
  PROGDIFF_HOST_DEVICE std::int64_t out_w() const { return (w + 2 * pad - kw) / stride + 1; }
  PROGDIFF_HOST_DEVICE std::int64_t patch() const { return c_in * kh * kw; }
  PROGDIFF_HOST_DEVICE std::int64_t out_hw() const { return out_h() * out_w(); }
  /// Multiply-adds counted as 2 FLOPs; the bias add is not counted.
  PROGDIFF_HOST_DEVICE std::int64_t forward_flops() const { return 2 * n * c_out * out_hw() * patch(); }

  /// Every size positive (the padding at least 0).
  PROGDIFF_HOST_DEVICE bool sizes_positive() const {
    return n > 0 && c_in > 0 && c_out > 0 && kh > 0 && kw > 0 && stride > 0 && pad >= 0;
  }
  /// The input gradient is itself a convolution of the output gradient: with the flipped kernels,
  /// the channel roles swapped and padding k - 1 - pad (stride 1, a square kernel, pad < k).
  PROGDIFF_HOST_DEVICE bool backward_data_is_forward() const { return stride == 1 && kh == kw && pad <= kh - 1; }
  /// That convolution's sizes, where backward_data_is_forward(): dy [n, c_out, out_h, out_w] in,
  /// dx [n, c_in, h, w] out.
  PROGDIFF_HOST_DEVICE ConvGeometry backward_data_as_forward() const {
    return ConvGeometry{n, c_out, out_h(), out_w(), c_in, kh, kw, 1, kh - 1 - pad};
  }
  /// The kernel fits inside the padded input.
  PROGDIFF_HOST_DEVICE bool kernel_fits() const { return h + 2 * pad >= kh && w + 2 * pad >= kw; }
};

}  // namespace progdiff

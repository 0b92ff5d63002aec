#pragma once
#include <cstdint>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/core/host_device.hpp"

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

  void validate(const std::string& where) const {
    require(n > 0 && c_in > 0 && c_out > 0 && kh > 0 && kw > 0 && stride > 0 && pad >= 0,
            where + ": convolution sizes must be positive");
    require<ShapeError>(h + 2 * pad >= kh && w + 2 * pad >= kw,
                        where + ": kernel " + std::to_string(kh) + "x" + std::to_string(kw) +
                            " larger than the padded input " + std::to_string(h + 2 * pad) + "x" +
                            std::to_string(w + 2 * pad));
  }
};

}  // namespace progdiff

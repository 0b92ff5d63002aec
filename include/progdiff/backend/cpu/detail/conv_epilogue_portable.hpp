#pragma once
// The convolution epilogue (conv_epilogue.hpp) on generic 8-float vectors, for the AVX2 kernels:
// the terms are added one at a time, bias, then the per-sample bias, then the residual, each
// rounded as it is added, which is exactly what the separate passes (add_channel_bias,
// add_sample_channel, add) compute, so fusing them changes no bit of the output.
#include <cstdint>

#include "progdiff/backend/conv_epilogue.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/vector_math_portable.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::portable {

/// The epilogue's terms for one sample n of a batch: its row of the per-sample bias and its
/// slice of the residual.
struct SampleEpilogue {
  const float* bias = nullptr;         // [C_out]
  const float* sample_bias = nullptr;  // [C_out] of sample n
  const float* residual = nullptr;     // [C_out, H_out, W_out] of sample n

  SampleEpilogue(const ConvEpilogue<float>& epilogue, std::int64_t n, std::int64_t c_out, std::int64_t out_hw)
      : bias(epilogue.bias),
        sample_bias(epilogue.sample_bias ? epilogue.sample_bias + n * c_out : nullptr),
        residual(epilogue.residual ? epilogue.residual + n * c_out * out_hw : nullptr) {}

  bool empty() const { return !bias && !sample_bias && !residual; }

  /// v with the terms of channel c added, v holding the outputs at offset p of the channel's
  /// plane of `out_hw` values (`lanes` of them valid).
  Floats add(Floats v, std::int64_t c, std::int64_t out_hw, std::int64_t p, std::int64_t lanes) const {
    if (bias) v += bias[c];
    if (sample_bias) v += sample_bias[c];
    if (residual) v += load_lanes(residual + c * out_hw + p, lanes);
    return v;
  }

  /// Adds the terms to y [c_out, out_hw] of this sample, in place.
  void apply(std::int64_t c_out, std::int64_t out_hw, float* y) const {
    if (empty()) return;
    for (std::int64_t c = 0; c < c_out; ++c) {
      float* plane = y + c * out_hw;
      for_each_vector(out_hw, [&](std::int64_t p, std::int64_t lanes) {
        store(plane + p, add(load_lanes(plane + p, lanes), c, out_hw, p, lanes), lanes);
      });
    }
  }
};

}  // namespace progdiff::backend::cpu::portable
PROGDIFF_KERNELS_END

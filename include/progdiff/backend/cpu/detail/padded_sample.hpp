#pragma once
// A sample's input planes with zero borders, for the weight gradients that read each tap of a
// stride-1 convolution as a shifted view of a padded plane (the AVX-512 and AVX2 kernels).
#include <cstdint>
#include <cstring>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

/// Floats of one padded sample: [c_in, h + 2 pad, w + 2 pad].
inline std::int64_t padded_sample_floats(const ConvGeometry& g) {
  return g.c_in * (g.h + 2 * g.pad) * (g.w + 2 * g.pad);
}

/// Copies sample x [c_in, h, w] into x_pad [c_in, h + 2 pad, w + 2 pad] with zero borders.
inline void pad_sample(const ConvGeometry& g, const float* x, float* x_pad) {
  const std::int64_t hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad;
  for (std::int64_t c = 0; c < g.c_in; ++c) {
    float* plane = x_pad + c * hp * wp;
    std::memset(plane, 0, sizeof(float) * g.pad * wp);
    for (std::int64_t y = 0; y < g.h; ++y) {
      float* row = plane + (y + g.pad) * wp;
      for (std::int64_t t = 0; t < g.pad; ++t) row[t] = row[g.pad + g.w + t] = 0.0f;
      std::memcpy(row + g.pad, x + (c * g.h + y) * g.w, sizeof(float) * g.w);
    }
    std::memset(plane + (g.pad + g.h) * wp, 0, sizeof(float) * g.pad * wp);
  }
}

/// pad_sample for `samples` consecutive samples of x, one after another into x_pad
/// [samples][padded_sample_floats(g)].
inline void pad_samples(const ConvGeometry& g, const float* x, std::int64_t samples, float* x_pad) {
  const std::int64_t sample = g.c_in * g.h * g.w, padded = padded_sample_floats(g);
  for (std::int64_t s = 0; s < samples; ++s) pad_sample(g, x + s * sample, x_pad + s * padded);
}

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

#pragma once
// A sample's input planes with zero borders, for the weight gradients that read each tap of a
// stride-1 convolution as a shifted view of a padded plane (the AVX-512 and AVX2 kernels).
#include <cstdint>
#include <cstring>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

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

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

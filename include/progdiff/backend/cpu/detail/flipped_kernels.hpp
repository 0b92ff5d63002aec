#pragma once
// The kernels of a stride-1 convolution's input gradient taken as a forward convolution
// (ConvGeometry::backward_data_as_forward): each kernel turned by 180 degrees, the channel roles
// swapped.
#include <cstdint>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu {

/// flipped[ci, co, kh-1-ki, kw-1-kj] = weight[co, ci, ki, kj] for g's weights [c_out, c_in, kh, kw].
inline void flip_kernels(const ConvGeometry& g, const float* weight, float* flipped) {
  const std::int64_t taps = g.kh * g.kw;
  for (std::int64_t co = 0; co < g.c_out; ++co)
    for (std::int64_t ci = 0; ci < g.c_in; ++ci)
      for (std::int64_t u = 0; u < taps; ++u)
        flipped[(ci * g.c_out + co) * taps + (taps - 1 - u)] = weight[(co * g.c_in + ci) * taps + u];
}

}  // namespace progdiff::backend::cpu
PROGDIFF_KERNELS_END

#pragma once
// Plain-loop 2-D convolution (torch.nn.functional.conv2d and its two gradients), the
// reference every fast path is tested against. Sums run in double.
#include <cstdint>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"

// Compiled like the kernels it checks (optimized_kernels.hpp): plain loops either way, but a
// sanitized test at -O0 spent most of its time in them.
PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::reference {

/// y[n, co, oy, ox] = sum_{ci, ki, kj} w[co, ci, ki, kj] * x[n, ci, oy*s - p + ki, ox*s - p + kj] (assigns).
template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* weight, T* y) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  for (std::int64_t n = 0; n < g.n; ++n)
    for (std::int64_t co = 0; co < g.c_out; ++co)
      for (std::int64_t oy = 0; oy < oh; ++oy)
        for (std::int64_t ox = 0; ox < ow; ++ox) {
          double sum = 0.0;
          for (std::int64_t ci = 0; ci < g.c_in; ++ci)
            for (std::int64_t ki = 0; ki < g.kh; ++ki)
              for (std::int64_t kj = 0; kj < g.kw; ++kj) {
                const std::int64_t yi = oy * g.stride - g.pad + ki, xi = ox * g.stride - g.pad + kj;
                if (yi < 0 || yi >= g.h || xi < 0 || xi >= g.w) continue;
                sum += double(weight[((co * g.c_in + ci) * g.kh + ki) * g.kw + kj]) *
                       double(x[((n * g.c_in + ci) * g.h + yi) * g.w + xi]);
              }
          y[((n * g.c_out + co) * oh + oy) * ow + ox] = static_cast<T>(sum);
        }
}

/// dx = d(sum y * dy)/dx: every output pixel scatters dy * w back to the inputs it read (assigns).
template <class T>
void conv2d_backward_data(const ConvGeometry& g, const T* dy, const T* weight, T* dx) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  for (std::int64_t n = 0; n < g.n; ++n)
    for (std::int64_t ci = 0; ci < g.c_in; ++ci)
      for (std::int64_t yi = 0; yi < g.h; ++yi)
        for (std::int64_t xi = 0; xi < g.w; ++xi) {
          double sum = 0.0;
          for (std::int64_t co = 0; co < g.c_out; ++co)
            for (std::int64_t ki = 0; ki < g.kh; ++ki)
              for (std::int64_t kj = 0; kj < g.kw; ++kj) {
                // Input row yi is read by output row oy when oy*s - p + ki == yi.
                const std::int64_t ty = yi + g.pad - ki, tx = xi + g.pad - kj;
                if (ty < 0 || tx < 0 || ty % g.stride || tx % g.stride) continue;
                const std::int64_t oy = ty / g.stride, ox = tx / g.stride;
                if (oy >= oh || ox >= ow) continue;
                sum += double(weight[((co * g.c_in + ci) * g.kh + ki) * g.kw + kj]) *
                       double(dy[((n * g.c_out + co) * oh + oy) * ow + ox]);
              }
          dx[((n * g.c_in + ci) * g.h + yi) * g.w + xi] = static_cast<T>(sum);
        }
}

/// dweight[co, ci, ki, kj] += sum_{n, oy, ox} dy[n, co, oy, ox] * x[n, ci, oy*s - p + ki, ox*s - p + kj].
template <class T>
void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dweight) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  for (std::int64_t co = 0; co < g.c_out; ++co)
    for (std::int64_t ci = 0; ci < g.c_in; ++ci)
      for (std::int64_t ki = 0; ki < g.kh; ++ki)
        for (std::int64_t kj = 0; kj < g.kw; ++kj) {
          double sum = 0.0;
          for (std::int64_t n = 0; n < g.n; ++n)
            for (std::int64_t oy = 0; oy < oh; ++oy)
              for (std::int64_t ox = 0; ox < ow; ++ox) {
                const std::int64_t yi = oy * g.stride - g.pad + ki, xi = ox * g.stride - g.pad + kj;
                if (yi < 0 || yi >= g.h || xi < 0 || xi >= g.w) continue;
                sum += double(dy[((n * g.c_out + co) * oh + oy) * ow + ox]) *
                       double(x[((n * g.c_in + ci) * g.h + yi) * g.w + xi]);
              }
          T& out = dweight[((co * g.c_in + ci) * g.kh + ki) * g.kw + kj];
          out = static_cast<T>(double(out) + sum);
        }
}

}  // namespace progdiff::backend::cpu::reference
PROGDIFF_KERNELS_END

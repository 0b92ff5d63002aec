#pragma once
// Convolutions for AVX2 targets without AVX-512 as implicit GEMMs, none of which writes the
// im2col matrix out (against im2col then GEMM that saves writing, reading and packing again a
// matrix 9 times the input's size for a 3x3 kernel):
// - forward: the weights [c_out, c_in kh kw] are the A operand, packed once per call; each panel
//   of 16 output pixels of a sample's im2col matrix is gathered from the input straight into the
//   micro-kernel's packed B layout, one L2-sized chunk at a time (packed_sgemm::sgemm_streamed_b);
// - backward data at stride 1: a forward of dy with the flipped kernels (Winograd where it
//   applies, detail/winograd4_avx2.hpp);
// - weight gradient: col(x) dy^T, the im2col rows built straight into packed A panels (at
//   stride 1 six at a time, by vector loads from a zero-padded copy of the input and a transpose).
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/detail/flipped_kernels.hpp"
#include "progdiff/backend/cpu/detail/optimized_kernels.hpp"
#include "progdiff/backend/cpu/detail/packed_sgemm.hpp"
#include "progdiff/backend/cpu/detail/padded_sample.hpp"
#include "progdiff/backend/cpu/detail/sgemm_avx2.hpp"
#include "progdiff/backend/cpu/detail/thread_partial_sums.hpp"
#include "progdiff/backend/cpu/detail/winograd4_avx2.hpp"

PROGDIFF_KERNELS_BEGIN
namespace progdiff::backend::cpu::avx2 {

/// Rows [k0, k0 + kc) of the im2col matrix of one sample x [c_in, h, w], for the panels of kNr
/// columns (output pixels) [panel_begin, panel_end), into dst as [panel][kc][kNr]: zeros for
/// padding and for pixels past the output.
///
/// The row of channel c and tap (ki, kj) depends on c only through the plane it reads, so where
/// each lane reads from is worked out once per panel and tap, not once per row: at stride 1 as
/// the panel's runs of pixels in one output row (each a contiguous span of one input row), at
/// other strides as a table of per-lane offsets. Row by row, every panel of the chunk is filled
/// before the next row: consecutive panels read consecutive input, where panel by panel each row
/// would read a different plane, planes a multiple of 4 KiB apart that share L1 sets.
inline void pack_im2col_panels(const ConvGeometry& g, const float* x, std::int64_t k0, std::int64_t kc,
                               std::int64_t panel_begin, std::int64_t panel_end, float* dst) {
  constexpr std::int64_t Nr = Kernel::kNr;
  static_assert(Nr == 16, "the im2col panel is two 8-float vectors wide");
  const std::int64_t ow = g.out_w(), ohw = g.out_hw(), taps = g.kh * g.kw, plane_size = g.h * g.w;
  const std::int64_t panels = panel_end - panel_begin, panel_stride = kc * Nr;
  const std::int64_t c0 = k0 / taps, t0 = k0 % taps;  // the first row's channel and tap; rows go tap-fastest

  constexpr std::int64_t kMaxRuns = 6;  // a 16-pixel panel crosses at most 16 / ow + 2 output rows
  if (g.stride == 1 && ow >= 4) {
    // Per panel and tap, the runs of the panel's pixels that share an output row and read inside
    // the image: lane j reads plane[offset + j] where mask_lo/mask_hi (lanes 0-7 / 8-15) are set.
    struct Load {
      std::int64_t offset;
      __m256i mask_lo, mask_hi;
    };
    thread_local std::vector<Load> loads;
    thread_local std::vector<std::int64_t> loads_begin;  // of (panel, tap) at [panel * taps + tap]
    loads.clear();
    loads_begin.assign(static_cast<std::size_t>(panels * taps + 1), 0);
    const __m256i lanes_lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                  lanes_hi = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
    for (std::int64_t p = 0; p < panels; ++p) {
      // Lanes [lane_begin, lane_end) of a run are the pixels (oy, lane + ox_minus_lane).
      struct Run {
        std::int64_t oy, lane_begin, lane_end, ox_minus_lane;
      };
      Run runs[kMaxRuns];
      std::int64_t nruns = 0;
      for (std::int64_t lane = 0, q = (panel_begin + p) * Nr; lane < Nr && q < ohw; ++nruns) {
        const std::int64_t oy = q / ow, ox = q % ow, len = std::min(Nr - lane, ow - ox);
        runs[nruns] = {oy, lane, lane + len, ox - lane};
        lane += len;
        q += len;
      }
      for (std::int64_t tap = 0; tap < taps; ++tap) {
        const std::int64_t ki = tap / g.kw, kj = tap % g.kw;
        for (std::int64_t i = 0; i < nruns; ++i) {
          const Run& run = runs[i];
          const std::int64_t yi = run.oy - g.pad + ki,
                             shift = run.ox_minus_lane - g.pad + kj;  // lane j reads column j + shift
          const std::int64_t lo = std::max(run.lane_begin, -shift), hi = std::min(run.lane_end, g.w - shift);
          if (yi < 0 || yi >= g.h || lo >= hi) continue;
          const __m256i vlo = _mm256_set1_epi32(static_cast<int>(lo) - 1),
                        vhi = _mm256_set1_epi32(static_cast<int>(hi));
          const auto in = [&](__m256i lane) {
            return _mm256_and_si256(_mm256_cmpgt_epi32(lane, vlo), _mm256_cmpgt_epi32(vhi, lane));
          };
          loads.push_back({yi * g.w + shift, in(lanes_lo), in(lanes_hi)});
        }
        loads_begin[static_cast<std::size_t>(p * taps + tap + 1)] = static_cast<std::int64_t>(loads.size());
      }
    }
    // Where a span's 16 floats lie inside the sample, plain loads with the padding lanes cleared
    // afterwards: masked loads (vmaskmovps) cost several times as much on some cores (Zen 3).
    // Only spans that reach past the sample's first or last float need them.
    const auto sample_begin = reinterpret_cast<std::uintptr_t>(x);
    const auto sample_end = reinterpret_cast<std::uintptr_t>(x + g.c_in * plane_size);
    std::int64_t c = c0, t = t0;
    for (std::int64_t r = 0; r < kc; ++r) {
      const auto plane = reinterpret_cast<std::uintptr_t>(x + c * plane_size);
      for (std::int64_t p = 0; p < panels; ++p) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        const std::size_t first = static_cast<std::size_t>(loads_begin[static_cast<std::size_t>(p * taps + t)]),
                          last = static_cast<std::size_t>(loads_begin[static_cast<std::size_t>(p * taps + t + 1)]);
        for (std::size_t l = first; l < last; ++l) {
          const Load& load = loads[l];
          const std::uintptr_t address = plane + static_cast<std::uintptr_t>(load.offset * std::int64_t{sizeof(float)});
          const auto* span = reinterpret_cast<const float*>(address);
          if (address >= sample_begin && address + Nr * sizeof(float) <= sample_end) {
            lo = _mm256_or_ps(lo, _mm256_and_ps(_mm256_loadu_ps(span), _mm256_castsi256_ps(load.mask_lo)));
            hi = _mm256_or_ps(hi, _mm256_and_ps(_mm256_loadu_ps(span + 8), _mm256_castsi256_ps(load.mask_hi)));
          } else {  // masked lanes are not read
            lo = _mm256_or_ps(lo, _mm256_maskload_ps(span, load.mask_lo));
            hi = _mm256_or_ps(hi, _mm256_maskload_ps(span + 8, load.mask_hi));
          }
        }
        float* out = dst + p * panel_stride + r * Nr;
        _mm256_storeu_ps(out, lo);
        _mm256_storeu_ps(out + 8, hi);
      }
      if (++t == taps) t = 0, ++c;
    }
    return;
  }

  // Any stride: each panel and tap's per-lane offsets into the plane, -1 for padding and past
  // the output.
  thread_local std::vector<std::int64_t> offsets;
  offsets.resize(static_cast<std::size_t>(panels * taps * Nr));
  for (std::int64_t p = 0; p < panels; ++p)
    for (std::int64_t tap = 0; tap < taps; ++tap) {
      const std::int64_t ki = tap / g.kw, kj = tap % g.kw;
      for (std::int64_t j = 0; j < Nr; ++j) {
        const std::int64_t q = (panel_begin + p) * Nr + j;
        const std::int64_t yi = q / ow * g.stride - g.pad + ki, xj = q % ow * g.stride - g.pad + kj;
        offsets[static_cast<std::size_t>((p * taps + tap) * Nr + j)] =
            q < ohw && yi >= 0 && yi < g.h && xj >= 0 && xj < g.w ? yi * g.w + xj : -1;
      }
    }
  std::int64_t c = c0, t = t0;
  for (std::int64_t r = 0; r < kc; ++r) {
    const float* plane = x + c * plane_size;
    for (std::int64_t p = 0; p < panels; ++p) {
      const std::int64_t* offset = offsets.data() + (p * taps + t) * Nr;
      float* out = dst + p * panel_stride + r * Nr;
      for (std::int64_t j = 0; j < Nr; ++j) out[j] = offset[j] >= 0 ? plane[offset[j]] : 0.0f;
    }
    if (++t == taps) t = 0, ++c;
  }
}

/// y = conv(x, weight) + the epilogue's terms (assigns), samples in parallel; each sample's terms
/// are added while its output is still in cache.
inline void conv2d_forward_implicit(const ConvGeometry& g, const float* x, const float* weight, float* y,
                                    const ConvEpilogue<float>& epilogue = {}) {
  const std::int64_t m = g.c_out, k = g.patch(), ohw = g.out_hw();
  const std::int64_t mpanels = (m + Kernel::kMr - 1) / Kernel::kMr;
  thread_local std::vector<float> a_buffer;
  float* pa = packed_sgemm::thread_scratch(a_buffer, static_cast<std::size_t>(mpanels * k * Kernel::kMr));
  packed_sgemm::pack_a<Kernel::kMr>(Trans::No, m, k, weight, k, pa, 0, mpanels);
#pragma omp parallel for schedule(static) if (g.n > 1 && !omp_in_parallel())
  for (std::int64_t i = 0; i < g.n; ++i) {
    const float* xi = x + i * g.c_in * g.h * g.w;
    const auto pack = [&](std::int64_t k0, std::int64_t kc, std::int64_t panel_begin, std::int64_t panel_end,
                          float* dst) { pack_im2col_panels(g, xi, k0, kc, panel_begin, panel_end, dst); };
    packed_sgemm::sgemm_streamed_b<Kernel>(m, ohw, k, 1.0f, pa, pack, 0.0f, y + i * m * ohw, ohw);
    portable::SampleEpilogue(epilogue, i, m, ohw).apply(m, ohw, y + i * m * ohw);
  }
}

/// Whether the backward data runs as a forward convolution of dy here
/// (ConvGeometry::backward_data_is_forward); 1x1 kernels go to one plain GEMM instead.
inline bool backward_data_as_forward(const ConvGeometry& g) { return g.backward_data_is_forward() && g.kh > 1; }

/// dx = conv_transpose(dy, weight) (assigns) as the forward of dy with the flipped kernels: no
/// im2col matrix of dy's size times k^2 and no scatter-add back into dx. That forward runs as
/// Winograd where it applies with `winograd_min_channels` (tiles of at most `largest_tile`
/// pixels a side, winograd_tile), as the implicit GEMM otherwise.
inline void conv2d_backward_data_as_forward(const ConvGeometry& g, const float* dy, const float* weight, float* dx,
                                            std::int64_t winograd_min_channels, std::int64_t largest_tile) {
  thread_local std::vector<float> flipped;
  flipped.resize(static_cast<std::size_t>(g.c_in * g.c_out * g.kh * g.kw));
  flip_kernels(g, weight, flipped.data());
  const ConvGeometry t = g.backward_data_as_forward();
  if (winograd_takes(t, winograd_min_channels, largest_tile))
    return conv2d_winograd_forward(t, winograd_tile(t, largest_tile), dy, flipped.data(), dx);
  conv2d_forward_implicit(t, dy, flipped.data(), dx);
}

/// Row r = (c, ki, kj) of the im2col matrix of `samples` consecutive samples of x, written to
/// out[p * stride] for the pixels p of the samples side by side: zeros where the tap reads padding.
inline void im2col_row_strided(const ConvGeometry& g, const float* x, std::int64_t samples, std::int64_t r, float* out,
                               std::int64_t stride) {
  const std::int64_t taps = g.kh * g.kw, c = r / taps, ki = (r % taps) / g.kw, kj = r % g.kw;
  const std::int64_t oh = g.out_h(), ow = g.out_w(), sample_size = g.c_in * g.h * g.w;
  // The output columns whose tap lands inside the row: ox in [lo, hi).
  const std::int64_t lo = std::clamp<std::int64_t>((g.pad - kj + g.stride - 1) / g.stride, 0, ow);
  const std::int64_t hi = std::clamp<std::int64_t>((g.w + g.pad - kj + g.stride - 1) / g.stride, lo, ow);
  for (std::int64_t s = 0; s < samples; ++s) {
    const float* plane = x + s * sample_size + c * g.h * g.w;
    for (std::int64_t oy = 0; oy < oh; ++oy, out += ow * stride) {
      const std::int64_t yi = oy * g.stride - g.pad + ki;
      if (yi < 0 || yi >= g.h) {
        for (std::int64_t ox = 0; ox < ow; ++ox) out[ox * stride] = 0.0f;
        continue;
      }
      const float* row = plane + yi * g.w - g.pad + kj;  // row[ox * g.stride] for ox in [lo, hi)
      for (std::int64_t ox = 0; ox < lo; ++ox) out[ox * stride] = 0.0f;
      for (std::int64_t ox = lo; ox < hi; ++ox) out[ox * stride] = row[ox * g.stride];
      for (std::int64_t ox = hi; ox < ow; ++ox) out[ox * stride] = 0.0f;
    }
  }
}

/// The 8x8 transpose of rows[0..7]: out[j] lane i is rows[i] lane j.
inline void transpose8x8(const __m256 rows[8], __m256 out[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(rows[i], rows[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(rows[i], rows[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    out[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    out[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

/// The floats zero_padded_planes writes for `samples` samples of g's input: each plane with g.pad
/// zeros on every side, and 8 floats of slack after the last.
inline std::int64_t zero_padded_floats(const ConvGeometry& g, std::int64_t samples) {
  return samples * padded_sample_floats(g) + 8;
}

/// The planes of `samples` consecutive samples of x, each with g.pad zeros on every side
/// (pad_sample), into out [samples, c_in, h + 2 pad, w + 2 pad], then 8 zeros: the slack that
/// im2col_rows_packed6's last loads read past the last plane.
inline void zero_padded_planes(const ConvGeometry& g, const float* x, std::int64_t samples, float* out) {
  pad_samples(g, x, samples, out);
  float* slack = out + samples * padded_sample_floats(g);
  std::fill(slack, slack + 8, 0.0f);
}

/// Rows r0 .. r0 + 5 of the im2col matrix of `samples` consecutive samples (stride 1), read from
/// their zero-padded planes (zero_padded_planes), as the micro-kernel's packed A panel:
/// out[p * 6 + i] = col[r0 + i][p], for the pixels p of the samples side by side; what
/// im2col_row_strided writes for six rows, row by row, one float at a time. Here eight pixels of
/// an output row at a time: each row's eight values are one plain vector load (the padding is
/// in the planes, so no lane needs a test), an 8x8 transpose makes them eight pixels' six
/// values, and overlapping 8-float stores in pixel order write them (each store's last two
/// floats are rewritten by the next; the panel's last store writes two floats past 6 pixels,
/// so `out` needs that slack).
inline void im2col_rows_packed6(const ConvGeometry& g, const float* padded, std::int64_t samples, std::int64_t r0,
                                float* out) {
  static_assert(Kernel::kMr == 6, "im2col_rows_packed6 fills panels of the 6-row AVX2 micro-kernel");
  const std::int64_t taps = g.kh * g.kw, ow = g.out_w(), oh = g.out_h(), wp = g.w + 2 * g.pad;
  const std::int64_t plane = (g.h + 2 * g.pad) * wp, sample_size = g.c_in * plane;
  std::int64_t offset[6];  // of row i's input for output pixel (0, 0) in a padded sample
  for (std::int64_t i = 0; i < 6; ++i) {
    const std::int64_t r = r0 + i, tap = r % taps;
    offset[i] = (r / taps) * plane + (tap / g.kw) * wp + tap % g.kw;
  }
  __m256 v[8], t[8];
  v[6] = v[7] = _mm256_setzero_ps();
  for (std::int64_t s = 0; s < samples; ++s)
    for (std::int64_t oy = 0; oy < oh; ++oy) {
      const float* row = padded + s * sample_size + oy * wp;
      for (std::int64_t ox0 = 0; ox0 < ow; ox0 += 8) {
        for (int i = 0; i < 6; ++i) v[i] = _mm256_loadu_ps(row + offset[i] + ox0);
        transpose8x8(v, t);
        const std::int64_t count = std::min<std::int64_t>(8, ow - ox0);  // lanes past it read the next row
        for (std::int64_t j = 0; j < count; ++j) _mm256_storeu_ps(out + j * 6, t[j]);
        out += count * 6;
      }
    }
}

/// dweight[c_out, c_in kh kw] += sum over samples of dy_n col(x_n)^T (accumulates), computed as
/// its transpose col(x) dy^T: the im2col rows are built kMr at a time straight into the
/// micro-kernel's packed A layout, and dy^T, nine times smaller than col^T for a 3x3 kernel, is
/// the packed B. Each thread sums its samples (a static share, so the float result is the same
/// on every run with a given thread count) into a private dW^T, then the threads' sums are added
/// into dweight. Small images go several samples side by side, so that a micro-kernel call runs
/// at least 512 steps before it reads and writes its accumulator tile.
inline void conv2d_backward_weight_implicit(const ConvGeometry& g, const float* x, const float* dy, float* dweight) {
  constexpr std::int64_t Mr = Kernel::kMr, Nr = Kernel::kNr;
  const std::int64_t k = g.patch(), co = g.c_out, hw = g.out_hw();
  const std::int64_t npanels = (co + Nr - 1) / Nr;
  const std::int64_t group = std::clamp<std::int64_t>(512 / hw, 1, g.n), groups = (g.n + group - 1) / group;
  const std::int64_t x_stride = g.c_in * g.h * g.w;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  std::vector<float*> partial(static_cast<std::size_t>(threads), nullptr);
#pragma omp parallel num_threads(threads)
  {
    thread_local std::vector<float> acc_buffer, a_buffer, b_buffer, padded_buffer;
    float* acc = packed_sgemm::thread_scratch(acc_buffer, static_cast<std::size_t>(k * co));
    // (2 floats of slack for im2col_rows_packed6's last store)
    float* pa = packed_sgemm::thread_scratch(a_buffer, static_cast<std::size_t>(group * hw * Mr + 2));
    float* pb = packed_sgemm::thread_scratch(b_buffer, static_cast<std::size_t>(npanels * group * hw * Nr));
    // At stride 1 the group's input planes with their padding, read by im2col_rows_packed6.
    float* padded = g.stride == 1 ? packed_sgemm::thread_scratch(padded_buffer,
                                                                 static_cast<std::size_t>(zero_padded_floats(g, group)))
                                  : nullptr;
    partial[static_cast<std::size_t>(omp_get_thread_num())] = acc;
    std::fill(acc, acc + k * co, 0.0f);
#pragma omp for schedule(static)
    for (std::int64_t gi = 0; gi < groups; ++gi) {
      const std::int64_t i0 = gi * group, samples = std::min(group, g.n - i0), pixels = samples * hw;
      // dy^T of the group as B: panels [pixels][Nr] of output channels, sample after sample.
      for (std::int64_t s = 0; s < samples; ++s)
        packed_sgemm::pack_b<Nr>(Trans::Yes, hw, co, dy + (i0 + s) * co * hw, hw, pb + s * hw * Nr, 0, npanels,
                                 pixels * Nr);
      if (g.stride == 1) zero_padded_planes(g, x + i0 * x_stride, samples, padded);
      for (std::int64_t r0 = 0; r0 < k; r0 += Mr) {
        const std::int64_t mvalid = std::min(Mr, k - r0);
        if (mvalid == Mr && g.stride == 1)
          im2col_rows_packed6(g, padded, samples, r0, pa);
        else
          for (std::int64_t i = 0; i < Mr; ++i)
            if (i < mvalid)
              im2col_row_strided(g, x + i0 * x_stride, samples, r0 + i, pa + i, Mr);
            else
              for (std::int64_t q = 0; q < pixels; ++q) pa[q * Mr + i] = 0.0f;
        for (std::int64_t np = 0; np < npanels; ++np)
          Kernel::tile(pixels, pa, mvalid, pb + np * pixels * Nr, std::min(Nr, co - np * Nr), 1.0f, 1.0f,
                       acc + r0 * co + np * Nr, co);
      }
    }
    // (implicit barrier: every partial sum is complete)
    add_transposed_thread_sums(partial, co, k, dweight);
  }
}

}  // namespace progdiff::backend::cpu::avx2
PROGDIFF_KERNELS_END
#endif

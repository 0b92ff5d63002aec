#pragma once
// Measures on the running machine the convolution choices of kernel_choices.hpp: from how many
// channels Winograd F(2x2, 3x3) beats the direct kernel in the forward and in the weight
// gradient, and how large a Winograd block runs fastest. progdiff_calibrate (apps/calibrate) runs it and writes the
// result where every later process finds it. The decisions are separate functions of the timings, so they can be
// checked on timings chosen by hand.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "progdiff/backend/conv_geometry.hpp"
#include "progdiff/backend/cpu/kernel_choices.hpp"

#if defined(__AVX512F__)
#include "progdiff/backend/cpu/detail/conv_avx512.hpp"
#include "progdiff/backend/cpu/detail/winograd_avx512.hpp"
#elif defined(__AVX2__) && defined(__FMA__)
#include "progdiff/backend/cpu/detail/conv_avx2.hpp"
#include "progdiff/backend/cpu/detail/winograd4_avx2.hpp"
#include "progdiff/backend/cpu/detail/winograd_backward_weight_avx2.hpp"
#endif

namespace progdiff::backend::cpu {

/// One convolution shape timed both ways: median milliseconds of a forward pass (or of a weight
/// gradient, in ConvCalibration::weight_gradient_runs).
struct ConvTiming {
  std::int64_t channels = 0;  // c_in = c_out
  std::int64_t size = 0;      // height = width
  double direct_ms = 0;
  double winograd_ms = 0;
};

/// The Winograd forward over a set of shapes at one block size: the sum of their medians.
struct BlockTiming {
  std::int64_t block_bytes = 0;
  double total_ms = 0;
};

struct CalibrationSettings {
  std::int64_t batch = 32;
  int repetitions = 7;  // timed runs per shape and kernel, after one untimed
  std::vector<std::int64_t> channels{16, 24, 32, 48, 64, 96};
  std::vector<std::int64_t> sizes{32, 16, 8};  // each a whole number of the direct kernel's 64-pixel panels
  /// A block size replaces the built-in one only if it is at least this much faster (a guard
  /// against noise: the block size changes no result, only speed).
  double block_gain_needed = 0.03;
};

struct ConvCalibration {
  std::vector<ConvTiming> threshold_runs;        // the forward
  std::vector<ConvTiming> weight_gradient_runs;  // the weight gradient
  std::vector<BlockTiming> block_runs;
  KernelChoices choices;
};

/// The smallest channel count from which Winograd is faster (over the sizes given together) at
/// that count and at every larger one measured; kWinogradNever if it is not faster at the largest.
inline int winograd_min_channels_from(const std::vector<ConvTiming>& runs) {
  std::map<std::int64_t, std::pair<double, double>> totals;  // channels -> (direct, winograd)
  for (const ConvTiming& r : runs) {
    totals[r.channels].first += r.direct_ms;
    totals[r.channels].second += r.winograd_ms;
  }
  int threshold = kWinogradNever;
  for (auto it = totals.rbegin(); it != totals.rend() && it->second.second < it->second.first; ++it)
    threshold = static_cast<int>(it->first);
  return threshold;
}

/// winograd_min_channels_from for each size class of KernelChoices on its own; a class with no
/// timing keeps its value in `unmeasured`.
inline std::array<int, KernelChoices::kSizeClasses> winograd_min_channels_by_size(
    const std::vector<ConvTiming>& runs, std::array<int, KernelChoices::kSizeClasses> unmeasured) {
  for (int size = 0; size < KernelChoices::kSizeClasses; ++size) {
    std::vector<ConvTiming> of_size;
    for (const ConvTiming& t : runs)
      if (KernelChoices::size_class(t.size * t.size) == size) of_size.push_back(t);
    if (!of_size.empty()) unmeasured[std::size_t(size)] = winograd_min_channels_from(of_size);
  }
  return unmeasured;
}

/// The fastest block size, unless it beats `built_in`'s time by less than `gain_needed`.
inline std::int64_t winograd_block_bytes_from(const std::vector<BlockTiming>& runs, std::int64_t built_in,
                                              double gain_needed) {
  const auto base =
      std::find_if(runs.begin(), runs.end(), [&](const BlockTiming& r) { return r.block_bytes == built_in; });
  const auto best = std::min_element(
      runs.begin(), runs.end(), [](const BlockTiming& a, const BlockTiming& b) { return a.total_ms < b.total_ms; });
  if (best == runs.end()) return built_in;
  if (base != runs.end() && best->total_ms > base->total_ms * (1.0 - gain_needed)) return built_in;
  return best->block_bytes;
}

namespace detail {

/// Medians of alternating runs of `a` and `b` (each once untimed first), so a change in the
/// machine's load falls on both alike.
inline std::pair<double, double> alternating_medians(const std::function<void()>& a, const std::function<void()>& b,
                                                     int repetitions) {
  const auto time_ms = [](const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  a();
  b();
  std::vector<double> ta, tb;
  for (int r = 0; r < repetitions; ++r) {
    if (r % 2 == 0) {
      ta.push_back(time_ms(a));
      tb.push_back(time_ms(b));
    } else {
      tb.push_back(time_ms(b));
      ta.push_back(time_ms(a));
    }
  }
  const auto median = [](std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {median(ta), median(tb)};
}

}  // namespace detail

/// Times the direct and Winograd forwards, the direct and Winograd weight gradients and the
/// Winograd block sizes on this machine, with the OpenMP threads the process has. On an AVX2 build
/// without AVX-512 the "direct" kernels are the implicit GEMMs, the sizes whose rows its Winograd
/// forward does not take (winograd_takes) are left out of the forward's runs, and the block size is
/// not measured (its kernel sizes its blocks itself). Without AVX-512 or AVX2 there is nothing to
/// choose: no runs, and the built-in choices.
inline ConvCalibration calibrate_convolutions(const CalibrationSettings& settings = {}) {
  ConvCalibration result;
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  require(settings.repetitions >= 1 && settings.batch >= 1,
          "calibrate_convolutions: repetitions and batch must be >= 1");
  // The activations and weights of a shape of `c` channels at hw x hw.
  struct Buffers {
    std::vector<float> x, y, w;
  };
  // y (or dy) is filled too: the weight gradient reads it.
  const auto buffers = [&](std::int64_t c, std::int64_t hw) {
    const std::size_t activations = std::size_t(settings.batch * c * hw * hw);
    return Buffers{std::vector<float>(activations, 0.5f), std::vector<float>(activations, 0.25f),
                   std::vector<float>(std::size_t(c * c * 9), 0.01f)};
  };
  // Times `direct` against `winograd` (each given the geometry and the buffers) at every shape of
  // the settings that `take` accepts, into `runs`.
  const auto time_kernels = [&](std::vector<ConvTiming>& runs, auto&& take, auto&& direct, auto&& winograd) {
    for (std::int64_t c : settings.channels)
      for (std::int64_t hw : settings.sizes) {
        const ConvGeometry g{settings.batch, c, hw, hw, c, 3, 3, 1, 1};
        if (!take(g)) continue;
        Buffers b = buffers(c, hw);
        const auto [direct_ms, winograd_ms] =
            detail::alternating_medians([&] { direct(g, b); }, [&] { winograd(g, b); }, settings.repetitions);
        runs.push_back({c, hw, direct_ms, winograd_ms});
      }
  };
#endif
#if defined(__AVX512F__)
  const auto taps_of = [](const Buffers& b, std::int64_t c) {
    return [&w = b.w, c](std::int64_t o, std::int64_t i, int ki, int kj) { return w[(o * c + i) * 9 + ki * 3 + kj]; };
  };
  time_kernels(
      result.threshold_runs,
      [](const ConvGeometry& g) {
        require(avx512::winograd_applies(g) && avx512::direct_applies(g),
                "calibrate_convolutions: " + std::to_string(g.c_in) + " channels at " + std::to_string(g.h) + "x" +
                    std::to_string(g.w) +
                    " is not a shape both kernels run (16 or more channels, whole 64-pixel panels)");
        return true;
      },
      [](const ConvGeometry& g, Buffers& b) {
        avx512::conv2d_forward_direct(g, b.x.data(), b.w.data(), nullptr, b.y.data());
      },
      [&](const ConvGeometry& g, Buffers& b) {
        avx512::conv2d_winograd(g, b.x.data(), taps_of(b, g.c_in), nullptr, b.y.data());
      });
  time_kernels(
      result.weight_gradient_runs, [](const ConvGeometry&) { return true; },
      [](const ConvGeometry& g, Buffers& b) { avx512::conv2d_backward_weight(g, b.x.data(), b.y.data(), b.w.data()); },
      [](const ConvGeometry& g, Buffers& b) {
        avx512::conv2d_winograd_backward_weight(g, b.x.data(), b.y.data(), b.w.data());
      });

  // Block sizes around the built-in one, at the shapes of a CIFAR-size U-Net's levels; the
  // repetitions go round the block sizes in turn, so a change of load falls on each alike.
  const std::int64_t built_in = result.choices.winograd_block_bytes;
  const std::vector<std::int64_t> blocks{built_in / 2, built_in, built_in * 2};
  const std::vector<std::pair<std::int64_t, std::int64_t>> shapes{{64, 32}, {128, 16}, {256, 8}};
  std::vector<std::vector<double>> totals(blocks.size());
  for (int r = 0; r <= settings.repetitions; ++r)
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      double total = 0;
      for (const auto& [c, hw] : shapes) {
        const ConvGeometry g{settings.batch, c, hw, hw, c, 3, 3, 1, 1};
        Buffers buf = buffers(c, hw);
        const auto t0 = std::chrono::steady_clock::now();
        avx512::conv2d_winograd(g, buf.x.data(), taps_of(buf, c), nullptr, buf.y.data(), blocks[b]);
        total += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      }
      if (r > 0) totals[b].push_back(total);  // the first round is untimed
    }
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    std::sort(totals[b].begin(), totals[b].end());
    result.block_runs.push_back({blocks[b], totals[b][totals[b].size() / 2]});
  }
  result.choices.winograd_block_bytes =
      winograd_block_bytes_from(result.block_runs, built_in, settings.block_gain_needed);
#elif defined(__AVX2__) && defined(__FMA__)
  time_kernels(
      result.threshold_runs,
      [&](const ConvGeometry& g) { return avx2::winograd_takes(g, 1, result.choices.winograd_tile); },
      [](const ConvGeometry& g, Buffers& b) { avx2::conv2d_forward_implicit(g, b.x.data(), b.w.data(), b.y.data()); },
      [&](const ConvGeometry& g, Buffers& b) {  // with the tile the choices being measured take
        avx2::conv2d_winograd_forward(g, avx2::winograd_tile(g, result.choices.winograd_tile), b.x.data(), b.w.data(),
                                      b.y.data());
      });
  time_kernels(
      result.weight_gradient_runs, [](const ConvGeometry&) { return true; },
      [](const ConvGeometry& g, Buffers& b) {
        avx2::conv2d_backward_weight_implicit(g, b.x.data(), b.y.data(), b.w.data());
      },
      [](const ConvGeometry& g, Buffers& b) {
        avx2::conv2d_winograd_backward_weight(g, b.x.data(), b.y.data(), b.w.data());
      });
#else
  (void)settings;
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  result.choices.winograd_min_channels =
      winograd_min_channels_by_size(result.threshold_runs, result.choices.winograd_min_channels);
  result.choices.weight_gradient_winograd_min_channels =
      winograd_min_channels_by_size(result.weight_gradient_runs, result.choices.weight_gradient_winograd_min_channels);
  result.choices.source = "calibration";
#endif
  return result;
}

}  // namespace progdiff::backend::cpu

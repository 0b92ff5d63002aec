#pragma once
// Sampling noise from Philox, keyed by sample rather than by batch: sample `id` draws from
// its own stream (seed, kSamplingStream + id), and draw e (0 = the initial noise x_T, e >= 1
// = the noise of model evaluation e - 1) occupies indices [e D, (e + 1) D) of that stream,
// D = elements per sample. So a sample is the same whether generated alone or in any batch,
// at any position, on any back end (the normals are the shared Philox math of every back end).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"

namespace progdiff::sample {

/// Streams of sampling noise start here, apart from the streams of dropout and initialization.
inline constexpr std::uint64_t kSamplingStream = std::uint64_t{0x53414d50} << 32;  // "SAMP"

/// A back end that draws every row of a batch from its own Philox stream in one call.
template <class B, class T>
concept RowNoiseBackend = requires(std::int64_t i, std::uint64_t u, const std::uint64_t* cu, T* p) {
  B::template normal_rows<T>(i, i, u, cu, cu, p);
};

/// Fills row n of x [N, ...] with draw draws[n] of sample ids[n].
template <class T, class B>
void draw_sample_noise(Tensor<T, B>& x, std::uint64_t seed, std::span<const std::uint64_t> ids,
                       std::span<const std::uint64_t> draws) {
  const std::int64_t n = x.rank() ? x.dim(0) : 0;
  require<ShapeError>(static_cast<std::int64_t>(ids.size()) == n && static_cast<std::int64_t>(draws.size()) == n,
                      "draw_sample_noise: " + std::to_string(ids.size()) + " sample ids and " +
                          std::to_string(draws.size()) + " draws for a batch of shape " + x.shape().str());
  const std::size_t d = n ? x.size() / static_cast<std::size_t>(n) : 0;
  std::vector<std::uint64_t> streams(static_cast<std::size_t>(n)), offsets(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < streams.size(); ++i) {
    Generator g(seed, kSamplingStream + ids[i], draws[i] * d);
    streams[i] = g.stream();
    offsets[i] = g.reserve(d);
  }
  if constexpr (RowNoiseBackend<B, T>) {
    // one launch for the batch (a device back end would otherwise pay a launch per sample)
    B::template normal_rows<T>(n, static_cast<std::int64_t>(d), seed, streams.data(), offsets.data(), x.data());
  } else {
    for (std::size_t i = 0; i < streams.size(); ++i)
      B::template normal<T>(d, seed, streams[i], offsets[i], x.data() + i * d);
  }
}

/// Fills row n of x [N, ...] with draw `draw` of sample ids[n].
template <class T, class B>
void draw_sample_noise(Tensor<T, B>& x, std::uint64_t seed, std::span<const std::uint64_t> ids, std::uint64_t draw) {
  const std::vector<std::uint64_t> draws(ids.size(), draw);
  draw_sample_noise(x, seed, ids, std::span<const std::uint64_t>(draws));
}

}  // namespace progdiff::sample

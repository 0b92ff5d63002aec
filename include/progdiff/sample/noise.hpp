#pragma once
// Sampling noise from Philox, keyed by sample rather than by batch: sample `id` draws from
// its own stream (seed, kSamplingStream + id), and draw e (0 = the initial noise x_T, e >= 1
// = the noise of model evaluation e - 1) occupies indices [e D, (e + 1) D) of that stream,
// D = elements per sample. So a sample is the same whether generated alone or in any batch,
// at any position, on any back end (the normals are the shared Philox math of every back end).
#include <cstdint>
#include <span>

#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"

namespace progdiff::sample {

/// Streams of sampling noise start here, apart from the streams of dropout and initialization.
inline constexpr std::uint64_t kSamplingStream = std::uint64_t{0x53414d50} << 32;  // "SAMP"

/// Fills row n of x [N, ...] with draw `draw` of sample ids[n].
template <class T, class B>
void draw_sample_noise(Tensor<T, B>& x, std::uint64_t seed, std::span<const std::uint64_t> ids, std::uint64_t draw) {
  const std::int64_t n = x.rank() ? x.dim(0) : 0;
  require<ShapeError>(
      static_cast<std::int64_t>(ids.size()) == n,
      "draw_sample_noise: " + std::to_string(ids.size()) + " sample ids for a batch of shape " + x.shape().str());
  const std::size_t d = n ? x.size() / static_cast<std::size_t>(n) : 0;
  for (std::int64_t i = 0; i < n; ++i) {
    Generator g(seed, kSamplingStream + ids[static_cast<std::size_t>(i)], draw * d);
    const std::uint64_t first = g.reserve(d);
    B::template normal<T>(d, g.seed(), g.stream(), first, x.data() + static_cast<std::size_t>(i) * d);
  }
}

}  // namespace progdiff::sample

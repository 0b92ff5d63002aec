#pragma once
// SimilarityDpSplit: N contiguous intervals of a t-grid that maximize the mean within-interval
// similarity of optimal denoisers (eq. 5 of the multi-stage paper, estimated with K draws),
// found exactly by dynamic programming. The objective weights every grid point equally:
//   J = (1/G) sum_intervals (1/|I|) sum_{a, b in I} S(eps*_a, eps*_b),
// each point's mean similarity to the points of its own interval (the average association of
// Shi & Malik 2000). It generalizes Algorithm 1's three intervals to any N.
// The similarity is computed on G evenly spaced grid points (all of them when the schedule has
// at most G); schedule points between two of them join the interval of the one before.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/group/contiguous_dp.hpp"
#include "progdiff/group/denoiser_similarity.hpp"

namespace progdiff::group {

/// Exact maximizer of J above for a symmetric G x G similarity matrix (row-major).
inline Partition max_similarity_partition(const std::vector<double>& sim, std::int64_t g, std::int64_t groups) {
  // 2-D prefix sums: P[a][b] = sum of sim over rows < a, columns < b
  const auto n = static_cast<std::size_t>(g) + 1;
  std::vector<double> P(n * n, 0.0);
  for (std::size_t a = 1; a < n; ++a)
    for (std::size_t b = 1; b < n; ++b)
      P[a * n + b] = sim[(a - 1) * (n - 1) + (b - 1)] + P[(a - 1) * n + b] + P[a * n + b - 1] - P[(a - 1) * n + b - 1];
  auto cost = [&](std::int64_t b, std::int64_t e) {
    const auto B = static_cast<std::size_t>(b), E = static_cast<std::size_t>(e);
    const double block = P[E * n + E] - P[B * n + E] - P[E * n + B] + P[B * n + B];
    return -block / static_cast<double>(e - b);
  };
  return min_cost_contiguous_partition(g, groups, cost, "SimilarityDpSplit");
}

template <class B, class T = float>
struct SimilarityDpSplit {
  const OptimalDenoiser<B, T>* denoiser = nullptr;
  std::int64_t groups = 3;        // N
  std::int64_t grid_points = 64;  // G
  std::int64_t samples = 32;      // K draws (x0, eps) shared by all grid points
  double eta = 0.1;
  std::uint64_t seed = 0;

  /// The grid indices where the similarity is estimated: round(j (size - 1) / (G - 1)).
  template <schedule::NoiseSchedule S>
  std::vector<std::int64_t> grid(const S& s) const {
    const std::int64_t g = std::min(grid_points, s.size());
    std::vector<std::int64_t> idx;
    for (std::int64_t j = 0; j < g; ++j) idx.push_back(g == 1 ? 0 : (j * (s.size() - 1) + (g - 1) / 2) / (g - 1));
    return idx;
  }

  /// S(eps*_a, eps*_b) on the grid, G x G row-major.
  template <schedule::NoiseSchedule S>
  std::vector<double> similarity(const S& s) const {
    require(denoiser != nullptr, "SimilarityDpSplit: no denoiser (data set) given");
    require(samples >= 1 && grid_points >= 1, "SimilarityDpSplit: K and G must be >= 1");
    Generator gen(seed);
    const NoiseDraws<B, T> draws(*denoiser, samples, gen);
    const auto idx = grid(s);
    const auto g = static_cast<std::int64_t>(idx.size());
    std::vector<std::int64_t> draw;
    std::vector<double> scale, sigma;
    for (std::int64_t a = 0; a < g; ++a)
      for (std::int64_t k = 0; k < samples; ++k) {
        draw.push_back(k);
        scale.push_back(s.scale(idx[a]));
        sigma.push_back(s.sigma(idx[a]));
      }
    const auto eps = (*denoiser)(draws.noisy(draw, scale, sigma), scale, sigma).to_host();
    const std::int64_t d = denoiser->dim();
    std::vector<double> sim(static_cast<std::size_t>(g * g), 1.0);
    for (std::int64_t a = 0; a < g; ++a)
      for (std::int64_t b = a + 1; b < g; ++b) {
        double total = 0;
        for (std::int64_t k = 0; k < samples; ++k)
          total += function_distance(eps.data() + (a * samples + k) * d, eps.data() + (b * samples + k) * d, d, eta);
        sim[a * g + b] = sim[b * g + a] = total / static_cast<double>(samples);
      }
    return sim;
  }

  template <schedule::NoiseSchedule S>
  Partition group(const S& s) const {
    const auto idx = grid(s);
    const auto g = static_cast<std::int64_t>(idx.size());
    require(groups >= 1 && groups <= g, "SimilarityDpSplit: group count must lie in [1, " + std::to_string(g) +
                                            "] (the similarity grid), got " + std::to_string(groups));
    const Partition on_grid = max_similarity_partition(similarity(s), g, groups);
    Partition p;
    for (std::int64_t j = 0; j < on_grid.groups(); ++j) p.starts.push_back(idx[on_grid.begin(j)]);
    p.starts.push_back(s.size());
    return p;
  }
};

}  // namespace progdiff::group

#pragma once
// OptimalDenoiserClustering: Algorithm 1 of the multi-stage paper, three intervals
// [0, t1], (t1, t2), [t2, 1] of the schedule's grid.
//   for k = 1..K: y_k from the data, eps_k ~ N(0, I), t_k uniform on the grid;
//     S0_k = D(eps*_{t_k}, eps*_0, y_k, eps_k),  S1_k = D(eps*_{t_k}, eps*_1, y_k, eps_k)
//   t1 = the largest sampled tau with mean{S0_k : t_k <= tau} >= alpha      (line 8, eq. 6)
//   t2 = the smallest sampled tau with mean{S1_k : t_k >= tau} >= alpha     (line 9, eq. 7)
// eps*_0 and eps*_1 are the optimal denoisers at the first and last grid points. Grid points
// with t <= t1 form group 0, those with t >= t2 (and t > t1) group 2, the rest group 1.
// When no tau meets alpha for t1 (t2), group 0 (group 2) is empty; empty groups are dropped,
// so the partition holds 1 to 3 groups. Deterministic for a seed.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/group/denoiser_similarity.hpp"
#include "progdiff/group/partition.hpp"

namespace progdiff::group {

struct ClusteringSample {
  double t;            // t_k
  std::int64_t index;  // its grid index
  double s0, s1;       // D to eps*_0 and to eps*_1
};

struct ClusteringResult {
  double t1 = -std::numeric_limits<double>::infinity();  // -inf: no tau met alpha
  double t2 = std::numeric_limits<double>::infinity();   // +inf: no tau met alpha
  std::vector<ClusteringSample> samples;                 // sorted by t
};

/// Lines 8-9 of Algorithm 1 on given samples (sorted by t or not).
inline ClusteringResult choose_t1_t2(std::vector<ClusteringSample> samples, double alpha) {
  std::sort(samples.begin(), samples.end(), [](const auto& a, const auto& b) { return a.t < b.t; });
  ClusteringResult r;
  const std::size_t k = samples.size();
  double sum = 0;
  for (std::size_t i = 0; i < k; ++i) {
    sum += samples[i].s0;
    // tau = t_i includes every sample with t_k <= t_i: wait for the last of equal times
    if (i + 1 < k && samples[i + 1].t == samples[i].t) continue;
    if (sum / static_cast<double>(i + 1) >= alpha) r.t1 = samples[i].t;
  }
  sum = 0;
  for (std::size_t i = k; i-- > 0;) {
    sum += samples[i].s1;
    if (i > 0 && samples[i - 1].t == samples[i].t) continue;
    if (sum / static_cast<double>(k - i) >= alpha) r.t2 = samples[i].t;
  }
  r.samples = std::move(samples);
  return r;
}

template <class B, class T = float>
struct OptimalDenoiserClustering {
  const OptimalDenoiser<B, T>* denoiser = nullptr;
  std::int64_t samples = 512;  // K
  double alpha = 0.9;          // threshold on the mean similarity
  double eta = 0.1;            // threshold of D on |eps*_a - eps*_b|
  std::uint64_t seed = 0;

  template <schedule::NoiseSchedule S>
  ClusteringResult cluster(const S& s) const {
    require(denoiser != nullptr, "OptimalDenoiserClustering: no denoiser (data set) given");
    require(samples >= 1, "OptimalDenoiserClustering: K must be >= 1, got " + std::to_string(samples));
    require(eta >= 0, "OptimalDenoiserClustering: eta must be >= 0");
    Generator gen(seed);
    const NoiseDraws<B, T> draws(*denoiser, samples, gen);
    const std::int64_t last = s.size() - 1;
    std::vector<std::int64_t> draw, index;
    std::vector<double> scale, sigma;
    // rows [0, K): at t_k; [K, 2K): at the first grid point; [2K, 3K): at the last
    for (std::int64_t k = 0; k < samples; ++k)
      index.push_back(static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(s.size()))));
    for (int part = 0; part < 3; ++part)
      for (std::int64_t k = 0; k < samples; ++k) {
        const std::int64_t i = part == 0 ? index[k] : (part == 1 ? 0 : last);
        draw.push_back(k);
        scale.push_back(s.scale(i));
        sigma.push_back(s.sigma(i));
      }
    const auto eps = (*denoiser)(draws.noisy(draw, scale, sigma), scale, sigma).to_host();
    const std::int64_t d = denoiser->dim();
    std::vector<ClusteringSample> out;
    for (std::int64_t k = 0; k < samples; ++k) {
      const T* at_t = eps.data() + k * d;
      out.push_back({s.time(index[k]), index[k], function_distance(at_t, eps.data() + (samples + k) * d, d, eta),
                     function_distance(at_t, eps.data() + (2 * samples + k) * d, d, eta)});
    }
    return choose_t1_t2(std::move(out), alpha);
  }

  template <schedule::NoiseSchedule S>
  Partition group(const S& s) const {
    const ClusteringResult r = cluster(s);
    std::vector<std::int64_t> label(static_cast<std::size_t>(s.size()));
    for (std::int64_t i = 0; i < s.size(); ++i) {
      const double t = s.time(i);
      label[i] = t <= r.t1 ? 0 : (t >= r.t2 ? 2 : 1);
    }
    return partition_from_labels(label, {});
  }
};

}  // namespace progdiff::group

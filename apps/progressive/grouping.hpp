#pragma once
// The job's timestep groups (--grouping), each with a FLOPs budget for the TDC variant: the
// FLOPs-interval rule gives its own (eqs. 8-10); the other groupers get the largest eq. 8 budget
// among their timesteps, so that every timestep's budget is met.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "models.hpp"
#include "options.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/group/flops_interval.hpp"
#include "progdiff/group/optimal_denoiser.hpp"
#include "progdiff/group/optimal_denoiser_clustering.hpp"
#include "progdiff/group/similarity_dp_split.hpp"
#include "progdiff/group/snr_spread_split.hpp"
#include "progdiff/group/uniform_split.hpp"

namespace job {

/// Optimal-denoiser grouping reads this many training images (Prop. 1's data set {y_i}); more
/// cost time quadratically and change the intervals little.
inline constexpr std::int64_t kOptimalDenoiserImages = 2000;

/// The groups of the options' grouper on `schedule`; `train` (the images trained on) feeds the
/// optimal denoiser. Budgets: see the top of this file.
template <class S>
pd::group::Partition make_partition(const Options& o, const S& schedule, const pd::data::ImageDataset& train) {
  const pd::difficulty::SnrFlops budget{o.min_flops_ratio};
  pd::group::Partition p;
  switch (o.grouping) {
    case Grouping::Flops:
      return pd::group::FlopsIntervalGrouper<pd::difficulty::SnrFlops>{o.groups, budget}.group(schedule);
    case Grouping::Uniform:
      p = pd::group::UniformSplit{o.groups}.group(schedule);
      break;
    case Grouping::Snr:
      p = pd::group::SnrSpreadSplit{o.groups}.group(schedule);
      break;
    case Grouping::OptimalDenoiser: {
      const std::int64_t n = std::min(kOptimalDenoiserImages, train.count), d = train.sample_size();
      std::vector<float> pixels(train.pixels.begin(), train.pixels.begin() + n * d);
      const pd::group::OptimalDenoiser<Cpu, float> denoiser(pd::Tensor<float, Cpu>::from_host(pd::Shape{n, d}, pixels));
      // eta 0.01: on Fashion-MNIST a larger eta finds every t similar to both ends (docs/grouping.md)
      if (o.groups == 3)
        p = pd::group::OptimalDenoiserClustering<Cpu, float>{&denoiser, 512, 0.9, 0.01, o.seed}.group(schedule);
      else
        p = pd::group::SimilarityDpSplit<Cpu, float>{&denoiser, o.groups, 64, 256, 0.01, o.seed}.group(schedule);
      break;
    }
  }
  const std::vector<double> f = budget.fractions(schedule);
  const double top = *std::max_element(f.begin(), f.end());
  p.budgets.clear();
  for (std::int64_t g = 0; g < p.groups(); ++g)
    p.budgets.push_back(*std::max_element(f.begin() + p.begin(g), f.begin() + p.end(g)) / top);
  return p;
}

}  // namespace job

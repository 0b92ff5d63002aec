#pragma once
// LogNormalTimesteps: EDM's training noise levels, ln(sigma) ~ N(P_mean, P_std^2) (Karras et al.
// 2022, sec. 5, P_mean = -1.2, P_std = 1.2), drawn on the timesteps of a schedule::EdmSigma grid.
// Grid timestep i takes the log-normal mass of its cell [sigma(i - 1/2), sigma(i + 1/2)) (the first
// cell reaches down to 0, the last up to infinity), so the draw is the log-normal distribution
// with each sigma rounded to the nearest grid timestep in tau; on a 1000-step grid neighbouring
// sigmas differ by about 1% near sigma_data.
//
// A group [begin, end) draws from the log-normal restricted to its cells. Its weight is 1, or with
// group_mass_weights the group's log-normal mass over its share of the timesteps, M_g / (|g| / T):
// the trainer's mixed batches pick group g with probability |g| / T, and this weight makes their
// expected loss the log-normal one (a unified model has one group and weight 1; in per-group
// batches it scales each group's loss by a constant, which AdamW's step does not see).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/schedule/edm_sigma.hpp"
#include "progdiff/train/timestep_sampler.hpp"

namespace progdiff::train {

struct LogNormalSigmaConfig {
  double p_mean = -1.2;
  double p_std = 1.2;
  bool group_mass_weights = true;
};

class LogNormalTimesteps {
 public:
  LogNormalTimesteps(const schedule::EdmSigma& grid, std::int64_t begin, std::int64_t end,
                     LogNormalSigmaConfig config = {})
      : begin_(begin), end_(end) {
    detail::check_range(begin, end, "LogNormalTimesteps");
    require(end <= grid.size(), "LogNormalTimesteps: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                                    ") exceeds the EDM grid's " + std::to_string(grid.size()) + " timesteps");
    require(config.p_std > 0 && std::isfinite(config.p_mean),
            "LogNormalTimesteps: needs a finite P_mean and P_std > 0, got " + std::to_string(config.p_mean) + ", " +
                std::to_string(config.p_std));
    const std::int64_t last = grid.size() - 1;
    auto cdf_below = [&](std::int64_t i) {  // P(sigma below the lower edge of cell i)
      if (i <= 0) return 0.0;
      if (i > last) return 1.0;
      const double z = (std::log(grid.sigma_at(static_cast<double>(i) - 0.5)) - config.p_mean) / config.p_std;
      return 0.5 * std::erfc(-z / std::sqrt(2.0));
    };
    for (std::int64_t i = begin; i < end; ++i) mass_.push_back(cdf_below(i + 1) - cdf_below(i));
    group_mass_ = std::accumulate(mass_.begin(), mass_.end(), 0.0);
    require(group_mass_ > 0, "LogNormalTimesteps: the log-normal puts no mass on timesteps [" + std::to_string(begin) +
                                 ", " + std::to_string(end) + ")");
    weight_ = config.group_mass_weights
                  ? group_mass_ / (static_cast<double>(end - begin) / static_cast<double>(grid.size()))
                  : 1.0;
    cumulative_.resize(mass_.size());
    std::partial_sum(mass_.begin(), mass_.end(), cumulative_.begin());
  }

  /// Each timestep's probability within the range (sums to 1).
  std::vector<double> probabilities() const {
    std::vector<double> p = mass_;
    for (double& x : p) x /= group_mass_;
    return p;
  }
  /// The log-normal mass of the whole range.
  double group_mass() const { return group_mass_; }
  double weight() const { return weight_; }

  /// Inverts the cumulative mass at Generator::uniform().
  TimestepDraw draw(Generator& gen, std::int64_t count) {
    TimestepDraw d;
    for (std::int64_t i = 0; i < count; ++i) {
      const double u = static_cast<double>(gen.uniform()) * group_mass_;  // (0, mass]
      const auto it = std::lower_bound(cumulative_.begin(), cumulative_.end(), u);
      const auto j = std::min<std::ptrdiff_t>(it - cumulative_.begin(), static_cast<std::ptrdiff_t>(mass_.size()) - 1);
      d.timesteps.push_back(begin_ + static_cast<std::int64_t>(j));
      d.weights.push_back(weight_);
    }
    return d;
  }
  std::pair<std::int64_t, std::int64_t> range() const { return {begin_, end_}; }

 private:
  std::int64_t begin_, end_;
  std::vector<double> mass_, cumulative_;
  double group_mass_ = 0.0, weight_ = 1.0;
};

}  // namespace progdiff::train

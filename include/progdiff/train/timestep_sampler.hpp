#pragma once
// Timestep samplers: which grid indices of one group's range [begin, end) a training batch uses.
// A sampler returns the timesteps and an importance weight per sample such that the weighted loss
// is an unbiased estimate of the loss under uniform timesteps: w_t = 1 / ((end - begin) p_t).
//   UniformTimesteps     p_t = 1 / (end - begin), w = 1 (DDPM, Ho et al. 2020, alg. 1)
//   ImportanceTimesteps  p_t proportional to sqrt(E[L_t^2]) over the last `history` losses of each
//                        timestep, mixed with `uniform_mix` of the uniform distribution
//                        (Nichol & Dhariwal 2021, eq. 18, IDDPM's LossSecondMomentResampler);
//                        uniform until every timestep has a full history. Fixed probabilities
//                        can also be given.
// Any type with `TimestepDraw draw(Generator&, std::int64_t count)` and range() works (concept TimestepSampler).
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <deque>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/random.hpp"

namespace progdiff::train {

struct TimestepDraw {
  std::vector<std::int64_t> timesteps;
  std::vector<double> weights;  // importance weights, mean 1 under the sampler's distribution
};

// clang-format off
template <class S>
concept TimestepSampler = requires(S& s, const S& cs, Generator& gen, std::int64_t count) {
  { s.draw(gen, count) } -> std::same_as<TimestepDraw>;
  { cs.range() } -> std::same_as<std::pair<std::int64_t, std::int64_t>>;  // [begin, end)
};
// clang-format on

template <class S>
constexpr bool check_timestep_sampler() {
  static_assert(TimestepSampler<S>,
                "progdiff: this type is not a progdiff::train::TimestepSampler; it needs "
                "TimestepDraw draw(Generator&, std::int64_t count) and "
                "std::pair<std::int64_t, std::int64_t> range() const (see progdiff/train/timestep_sampler.hpp)");
  return true;
}

namespace detail {
inline void check_range(std::int64_t begin, std::int64_t end, const char* who) {
  require(begin >= 0 && end > begin, std::string(who) + ": timestep range [" + std::to_string(begin) + ", " +
                                         std::to_string(end) + ") is empty or negative");
}
}  // namespace detail

/// Uniform over [begin, end): each draw is Generator::below(end - begin).
class UniformTimesteps {
 public:
  UniformTimesteps(std::int64_t begin, std::int64_t end) : begin_(begin), end_(end) {
    detail::check_range(begin, end, "UniformTimesteps");
  }
  TimestepDraw draw(Generator& gen, std::int64_t count) {
    TimestepDraw d;
    for (std::int64_t i = 0; i < count; ++i)
      d.timesteps.push_back(begin_ + static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(end_ - begin_))));
    d.weights.assign(static_cast<std::size_t>(count), 1.0);
    return d;
  }
  std::pair<std::int64_t, std::int64_t> range() const { return {begin_, end_}; }

 private:
  std::int64_t begin_, end_;
};

/// Importance sampling over [begin, end) from a loss history or fixed probabilities.
class ImportanceTimesteps {
 public:
  ImportanceTimesteps(std::int64_t begin, std::int64_t end, std::int64_t history = 10, double uniform_mix = 0.001)
      : begin_(begin), end_(end), history_(history), uniform_mix_(uniform_mix) {
    detail::check_range(begin, end, "ImportanceTimesteps");
    require(history >= 1, "ImportanceTimesteps: history must be >= 1");
    require(uniform_mix >= 0 && uniform_mix <= 1, "ImportanceTimesteps: uniform_mix must lie in [0, 1]");
    losses_.resize(static_cast<std::size_t>(end - begin));
  }
  /// Fixed probabilities, one per timestep of [begin, end), positive; normalised here.
  ImportanceTimesteps(std::int64_t begin, std::int64_t end, std::vector<double> probabilities)
      : begin_(begin), end_(end) {
    detail::check_range(begin, end, "ImportanceTimesteps");
    require(static_cast<std::int64_t>(probabilities.size()) == end - begin,
            "ImportanceTimesteps: " + std::to_string(probabilities.size()) + " probabilities for " +
                std::to_string(end - begin) + " timesteps");
    for (std::size_t i = 0; i < probabilities.size(); ++i)
      require(probabilities[i] > 0 && std::isfinite(probabilities[i]),
              "ImportanceTimesteps: probability of timestep " + std::to_string(begin + static_cast<std::int64_t>(i)) +
                  " must be positive and finite");
    fixed_ = normalised(std::move(probabilities));
  }

  /// Records the per-sample losses of timesteps drawn earlier (ignored for fixed probabilities).
  void record(std::span<const std::int64_t> timesteps, std::span<const double> losses) {
    require(timesteps.size() == losses.size(), "ImportanceTimesteps::record: one loss per timestep expected");
    if (!fixed_.empty()) return;
    for (std::size_t i = 0; i < timesteps.size(); ++i) {
      const std::int64_t t = timesteps[i];
      require(t >= begin_ && t < end_, "ImportanceTimesteps::record: timestep " + std::to_string(t) + " outside [" +
                                           std::to_string(begin_) + ", " + std::to_string(end_) + ")");
      auto& h = losses_[static_cast<std::size_t>(t - begin_)];
      h.push_back(losses[i]);
      if (static_cast<std::int64_t>(h.size()) > history_) h.pop_front();
    }
  }

  /// The current probability of each timestep of [begin, end).
  std::vector<double> probabilities() const {
    if (!fixed_.empty()) return fixed_;
    const std::size_t k = losses_.size();
    const bool warm = std::all_of(losses_.begin(), losses_.end(),
                                  [&](const auto& h) { return static_cast<std::int64_t>(h.size()) == history_; });
    if (!warm) return std::vector<double>(k, 1.0 / static_cast<double>(k));
    std::vector<double> p(k);
    for (std::size_t t = 0; t < k; ++t) {
      double second_moment = 0.0;
      for (double l : losses_[t]) second_moment += l * l;
      p[t] = std::sqrt(second_moment / static_cast<double>(history_));
    }
    p = normalised(std::move(p));
    for (double& x : p) x = (1.0 - uniform_mix_) * x + uniform_mix_ / static_cast<double>(k);
    return p;
  }

  /// Draws by inverting the cumulative distribution at Generator::uniform().
  TimestepDraw draw(Generator& gen, std::int64_t count) {
    const std::vector<double> p = probabilities();
    std::vector<double> cumulative(p.size());
    std::partial_sum(p.begin(), p.end(), cumulative.begin());
    TimestepDraw d;
    const double k = static_cast<double>(p.size());
    for (std::int64_t i = 0; i < count; ++i) {
      const double u = static_cast<double>(gen.uniform()) * cumulative.back();  // (0, total]
      auto it = std::lower_bound(cumulative.begin(), cumulative.end(), u);
      if (it == cumulative.end()) --it;
      const auto t = static_cast<std::size_t>(it - cumulative.begin());
      d.timesteps.push_back(begin_ + static_cast<std::int64_t>(t));
      d.weights.push_back(1.0 / (k * p[t]));
    }
    return d;
  }
  std::pair<std::int64_t, std::int64_t> range() const { return {begin_, end_}; }

 private:
  static std::vector<double> normalised(std::vector<double> p) {
    const double total = std::accumulate(p.begin(), p.end(), 0.0);
    if (!(total > 0)) return std::vector<double>(p.size(), 1.0 / static_cast<double>(p.size()));
    for (double& x : p) x /= total;
    return p;
  }

  std::int64_t begin_, end_;
  std::int64_t history_ = 10;
  double uniform_mix_ = 0.0;
  std::vector<double> fixed_;
  std::vector<std::deque<double>> losses_;
};

static_assert(check_timestep_sampler<UniformTimesteps>());
static_assert(check_timestep_sampler<ImportanceTimesteps>());

}  // namespace progdiff::train

#pragma once
// A plan of discrete sampling timesteps over a trained alpha-bar table: the T values
// alphas_cumprod[t] (diffusers' name) and S timesteps in sampling order, strictly descending.
// Step e goes from timesteps[e] to timesteps[e + 1], the last step to t = -1 with alpha-bar 1
// (a respaced chain, IDDPM sec. 4 / DDIM sec. 4.2).
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/schedule/noise_schedule.hpp"
#include "progdiff/schedule/spacing.hpp"

namespace progdiff::sample {

/// alpha-bar at every grid point of a schedule, the input of the discrete samplers.
template <schedule::NoiseSchedule S>
std::vector<double> alphas_cumprod(const S& s) {
  std::vector<double> a(static_cast<std::size_t>(s.size()));
  for (std::int64_t i = 0; i < s.size(); ++i) a[static_cast<std::size_t>(i)] = s.alpha_bar(i);
  return a;
}

class DiscretePlan {
 public:
  DiscretePlan(std::vector<double> alphas_cumprod, std::vector<std::int64_t> timesteps, const char* who)
      : alpha_bar_(std::move(alphas_cumprod)), timesteps_(std::move(timesteps)) {
    const std::string w(who);
    require(!alpha_bar_.empty(), w + ": alphas_cumprod is empty");
    for (std::size_t i = 0; i < alpha_bar_.size(); ++i)
      require(alpha_bar_[i] > 0 && alpha_bar_[i] < 1, w + ": alphas_cumprod[" + std::to_string(i) + "] = " +
                                                          std::to_string(alpha_bar_[i]) + " is outside (0, 1)");
    require(!timesteps_.empty(), w + ": no sampling timesteps");
    for (std::size_t i = 0; i < timesteps_.size(); ++i) {
      require(timesteps_[i] >= 0 && timesteps_[i] < train_steps(),
              w + ": timestep[" + std::to_string(i) + "] = " + std::to_string(timesteps_[i]) + " is outside [0, " +
                  std::to_string(train_steps()) + ")");
      // The message reads timesteps_[i - 1], so it may only be built when i > 0.
      if (i > 0)
        require(timesteps_[i] < timesteps_[i - 1], w + ": timesteps must be strictly descending, but timestep[" +
                                                       std::to_string(i) + "] = " + std::to_string(timesteps_[i]) +
                                                       " follows " + std::to_string(timesteps_[i - 1]));
    }
  }

  std::int64_t train_steps() const { return static_cast<std::int64_t>(alpha_bar_.size()); }
  std::int64_t steps() const { return static_cast<std::int64_t>(timesteps_.size()); }
  const std::vector<std::int64_t>& timesteps() const { return timesteps_; }
  const std::vector<double>& alphas_cumprod() const { return alpha_bar_; }
  std::int64_t timestep(std::int64_t e) const { return timesteps_.at(static_cast<std::size_t>(e)); }
  /// The timestep step e lands on; -1 after the last step.
  std::int64_t previous(std::int64_t e) const { return e + 1 < steps() ? timestep(e + 1) : -1; }
  /// alpha-bar of timestep t; 1 at t = -1 (the clean end).
  double alpha_bar(std::int64_t t) const { return t < 0 ? 1.0 : alpha_bar_.at(static_cast<std::size_t>(t)); }

 private:
  std::vector<double> alpha_bar_;
  std::vector<std::int64_t> timesteps_;
};

}  // namespace progdiff::sample

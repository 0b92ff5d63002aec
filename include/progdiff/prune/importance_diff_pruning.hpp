#pragma once
// DiffPruningImportance: the Taylor criterion of Diff-Pruning (Fang, Ma and Wang 2023,
// "Structural Pruning for Diffusion Models", Sec. 3.2): the gradients of the denoising losses
// L_t are summed over the timesteps of a group, and a channel scores sum |w * sum_t dL_t/dw|
// over its weights. Steps are visited from the least noisy; the high-noise steps contribute
// little information, so a step whose loss falls below `threshold` times the largest loss seen
// so far is skipped (its gradient is not added).
//
//   DiffPruningImportance diff{0.1};
//   for (t : timesteps, ascending) { zero_grad(net); L_t = loss(net, t); backward; diff.observe(net, groups, L_t); }
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "progdiff/prune/group_parameters.hpp"
#include "progdiff/prune/importance.hpp"

namespace progdiff::prune {

class DiffPruningImportance {
 public:
  explicit DiffPruningImportance(double threshold = 0.1) : threshold_(threshold) {
    require(threshold >= 0.0 && threshold < 1.0,
            "DiffPruningImportance: threshold " + std::to_string(threshold) + " must lie in [0, 1)");
  }

  /// Adds the model's current gradients (those of step loss `step_loss`) unless the loss is below
  /// threshold * the largest loss observed; returns whether the step was used.
  template <class Net>
  bool observe(Net& net, double step_loss) {
    require(std::isfinite(step_loss), "DiffPruningImportance: the step loss is not finite");
    max_loss_ = std::max(max_loss_, step_loss);
    if (step_loss < threshold_ * max_loss_) {
      ++skipped_;
      return false;
    }
    const HostParameters g = HostParameters::of(net, true);
    for (const auto& [name, v] : g.values) {
      auto& sum = gradient_sums_[name];
      if (sum.empty()) sum.assign(v.size(), 0.0);
      require(sum.size() == v.size(), "DiffPruningImportance: parameter '" + name + "' changed size");
      for (std::size_t i = 0; i < v.size(); ++i) sum[i] += v[i];
    }
    ++used_;
    return true;
  }

  std::int64_t used_steps() const { return used_; }
  std::int64_t skipped_steps() const { return skipped_; }

  /// score_j = sum over channel j's weights |w * (sum of the used steps' gradients)|.
  template <class Net>
  ChannelScores scores(Net& net, const ChannelGroups& groups) const {
    require(used_ > 0, "DiffPruningImportance: no step observed; call observe(net, loss) after a backward pass");
    const HostParameters w = HostParameters::of(net);
    ChannelScores s;
    for (const auto& group : groups.groups) {
      s.emplace_back(static_cast<std::size_t>(group.width), 0.0);
      for (std::int64_t j = 0; j < group.width; ++j)
        for_each_channel_element(group, w.shapes, j, [&](const ChannelSlice& sl, std::int64_t i) {
          const auto e = static_cast<std::size_t>(i);
          s.back()[static_cast<std::size_t>(j)] += std::abs(w.at(sl.parameter)[e] * gradient_sums_.at(sl.parameter)[e]);
        });
    }
    return s;
  }

 private:
  double threshold_;
  double max_loss_ = 0.0;
  std::map<std::string, std::vector<double>> gradient_sums_;
  std::int64_t used_ = 0, skipped_ = 0;
};

}  // namespace progdiff::prune

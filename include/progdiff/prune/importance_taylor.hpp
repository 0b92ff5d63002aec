#pragma once
// TaylorImportance: the first-order Taylor criterion (Molchanov et al. 2019, "Importance
// Estimation for Neural Network Pruning", eq. 8 per weight): removing weight w changes the loss
// by about |w * dL/dw|; a channel's score sums that over the weights of its group slices, and
// over the batches it has observed.
//
//   TaylorImportance taylor;
//   for (batch : batches) { zero_grad(net); loss(net, batch); backward; taylor.observe(net, groups); }
//   prune_unet(net, taylor, widths);
#include <cmath>
#include <cstdint>
#include <string>

#include "progdiff/prune/group_parameters.hpp"
#include "progdiff/prune/importance.hpp"

namespace progdiff::prune {

/// score_j = sum over observed batches b of sum over channel j's weights |w * g_b|, where g_b is
/// the parameter gradient present at observe().
class TaylorImportance {
 public:
  /// Adds |w * grad| of the model's current gradients to every channel's score.
  template <class Net>
  void observe(Net& net, const ChannelGroups& groups) {
    const HostParameters w = HostParameters::of(net), g = HostParameters::of(net, true);
    if (totals_.empty()) totals_.assign(groups.size(), {});
    require(totals_.size() == groups.size(), "TaylorImportance: observed models with different channel groups");
    for (std::size_t k = 0; k < groups.size(); ++k) {
      const ChannelGroup& group = groups.groups[k];
      auto& t = totals_[k];
      if (t.empty()) t.assign(static_cast<std::size_t>(group.width), 0.0);
      require(static_cast<std::int64_t>(t.size()) == group.width,
              "TaylorImportance: group '" + group.name + "' changed width between observations");
      for (std::int64_t j = 0; j < group.width; ++j)
        for_each_channel_element(group, w.shapes, j, [&](const ChannelSlice& sl, std::int64_t i) {
          const auto e = static_cast<std::size_t>(i);
          t[static_cast<std::size_t>(j)] += std::abs(w.at(sl.parameter)[e] * g.at(sl.parameter)[e]);
        });
    }
    ++batches_;
  }

  std::int64_t batches() const { return batches_; }

  /// The accumulated scores; ConfigError before the first observe().
  template <class Net>
  ChannelScores scores(Net&, const ChannelGroups& groups) const {
    require(batches_ > 0, "TaylorImportance: no batch observed; call observe(net, groups) after a backward pass");
    expect_scores_fit(totals_, groups, "TaylorImportance");
    return totals_;
  }

 private:
  ChannelScores totals_;
  std::int64_t batches_ = 0;
};

}  // namespace progdiff::prune

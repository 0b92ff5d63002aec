#pragma once
// prune_to_flops: global structural pruning to a FLOPs budget, as DepGraph / Diff-Pruning prune
// to a target: every step removes one channel from each segment of the group whose lowest-ranked
// channels are least important (scores divided by their group's mean, so groups of different
// fan-in compare), until the model's FLOPs per sample are at or below the limit. The last step
// crossed the limit, so the result is within one channel-group step of it.
//
//   auto small = prune::prune_to_flops(net, prune::MagnitudeImportance{}, 0.5 * net.flops({1, 3, 32, 32}));
//   auto plan  = prune::plan_widths_for_flops(prune::channel_groups(net), scores, limit);  // widths only
//
// A step that would make a projecting ResBlock's input and output widths equal is skipped over
// (the group goes two steps at once), since that width would change the block's structure.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "progdiff/prune/prune_unet.hpp"

namespace progdiff::prune {

/// Widths reaching a FLOPs limit, the FLOPs they cost, and the FLOPs of the plan one step before.
struct FlopsPlan {
  std::vector<std::int64_t> widths;
  double flops = 0.0;
  double flops_before_last_step = 0.0;  // > limit when any step was taken
  std::int64_t steps = 0;
};

/// The widths of global pruning by `scores` to at most `limit` FLOPs per sample (groups.flops).
/// ConfigError when even the narrowest feasible widths cost more.
inline FlopsPlan plan_widths_for_flops(const ChannelGroups& groups, const ChannelScores& scores, double limit) {
  expect_scores_fit(scores, groups, "prune_to_flops");
  FlopsPlan plan{groups.widths(), groups.flops(), groups.flops(), 0};
  // Per group and segment: normalized scores in ascending order (next to remove first).
  std::vector<std::vector<std::vector<double>>> order(groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const ChannelGroup& group = groups.groups[g];
    double mean = 0.0;
    for (double s : scores[g]) mean += s / static_cast<double>(group.width);
    const double norm = mean > 0.0 ? mean : 1.0;
    const std::int64_t size = group.width / group.segments;
    for (std::int64_t s = 0; s < group.segments; ++s) {
      std::vector<double> seg;
      for (std::int64_t j = s * size; j < (s + 1) * size; ++j)
        seg.push_back(scores[g][static_cast<std::size_t>(j)] / norm);
      std::sort(seg.begin(), seg.end());
      order[g].push_back(seg);
    }
  }
  // Cost of removing `steps` more steps from group g at its current width.
  auto cost = [&](std::size_t g, std::int64_t steps) {
    const ChannelGroup& group = groups.groups[g];
    const std::int64_t removed = (group.width - plan.widths[g]) / group.segments;
    double c = 0.0;
    for (const auto& seg : order[g])
      for (std::int64_t k = removed; k < removed + steps; ++k) c += seg[static_cast<std::size_t>(k)];
    return c;
  };
  while (plan.flops > limit) {
    std::size_t best = groups.size();
    std::int64_t best_steps = 0;
    double best_cost = std::numeric_limits<double>::infinity();
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const ChannelGroup& group = groups.groups[g];
      if (!group.prunable) continue;
      std::vector<std::int64_t> w = plan.widths;
      for (std::int64_t steps = 1; w[g] - group.step() >= group.min_width(); ++steps) {
        w[g] -= group.step();
        if (!groups.feasible(w)) continue;
        const double c = cost(g, steps);
        if (c < best_cost) {
          best = g;
          best_steps = steps;
          best_cost = c;
        }
        break;
      }
    }
    if (best == groups.size())
      throw ConfigError("prune_to_flops: the narrowest feasible widths cost " + std::to_string(plan.flops) +
                        " FLOPs per sample, above the limit " + std::to_string(limit));
    plan.flops_before_last_step = plan.flops;
    plan.widths[best] -= best_steps * groups.groups[best].step();
    plan.flops = groups.flops(plan.widths);
    ++plan.steps;
  }
  return plan;
}

/// The pruned model of at most `limit` FLOPs per sample, channels ranked by `scores`.
template <class Net>
Net prune_to_flops(Net& net, const ChannelScores& scores, double limit) {
  const FlopsPlan plan = plan_widths_for_flops(channel_groups(net), scores, limit);
  return prune_unet(net, scores, std::span<const std::int64_t>(plan.widths));
}

/// The pruned model of at most `limit` FLOPs per sample, channels ranked by `policy`.
template <class Net, class Policy>
requires(!std::same_as<std::remove_cvref_t<Policy>, ChannelScores>) Net
    prune_to_flops(Net& net, Policy&& policy, double limit) {
  static_assert(check_importance_policy<std::remove_cvref_t<Policy>, Net>());
  return prune_to_flops(net, ChannelScores(policy.scores(net, channel_groups(net))), limit);
}

}  // namespace progdiff::prune

#pragma once
// ImportancePolicy: how a pruner ranks the channels of each dependency group. A policy is any
// type with
//
//   template <class Net> ChannelScores scores(Net& net, const ChannelGroups& groups);
//
// returning one score per channel of every group (higher = more important, kept first). The
// policies of the library: RandomImportance, MagnitudeImportance (L1 / L2), TaylorImportance
// (first order, |w * dL/dw| accumulated over batches) and DiffPruningImportance (Taylor over a
// group's timesteps, Fang et al. 2023). A user policy only needs the member above.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/prune/channel_groups.hpp"

namespace progdiff::prune {

/// scores[g][j]: importance of channel j of group g.
using ChannelScores = std::vector<std::vector<double>>;

/// A type that scores the channels of a model's groups.
template <class P, class Net>
concept ImportancePolicy = requires(P& policy, Net& net, const ChannelGroups& groups) {
  { policy.scores(net, groups) } -> std::convertible_to<ChannelScores>;
};

template <class P, class Net>
constexpr bool check_importance_policy() {
  static_assert(ImportancePolicy<P, Net>,
                "progdiff::prune: this type is not an importance policy for the model; it needs a member "
                "`ChannelScores scores(Net& net, const ChannelGroups& groups)` giving one score per channel of "
                "every group (see progdiff/prune/importance.hpp)");
  return true;
}

/// Throws ConfigError unless `scores` has one finite score per channel of every group.
inline void expect_scores_fit(const ChannelScores& scores, const ChannelGroups& groups, const std::string& what) {
  if (scores.size() != groups.size())
    throw ConfigError(what + ": " + std::to_string(scores.size()) + " score lists for " +
                      std::to_string(groups.size()) + " channel groups");
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (static_cast<std::int64_t>(scores[g].size()) != groups.groups[g].width)
      throw ConfigError(what + ": group '" + groups.groups[g].name + "' has " + std::to_string(groups.groups[g].width) +
                        " channels but " + std::to_string(scores[g].size()) + " scores");
    for (double s : scores[g])
      if (!(s == s) || s - s != 0.0)
        throw ConfigError(what + ": group '" + groups.groups[g].name + "' has a score that is not finite");
  }
}

}  // namespace progdiff::prune

#pragma once
// RandomImportance: channels ranked by uniform random scores, the random-pruning baseline of
// the pruning ablations (Table 5 of Step-Adaptive Training; Diff-Pruning's "random" row).
#include <cstdint>

#include "progdiff/core/random.hpp"
#include "progdiff/prune/importance.hpp"

namespace progdiff::prune {

/// Scores drawn uniformly from [0, 1) by a Philox generator of the given seed: the same seed
/// ranks the same model the same way.
struct RandomImportance {
  std::uint64_t seed = 0;

  template <class Net>
  ChannelScores scores(Net&, const ChannelGroups& groups) const {
    Generator gen(seed);
    ChannelScores s;
    for (const auto& g : groups.groups) {
      s.emplace_back();
      for (std::int64_t j = 0; j < g.width; ++j) s.back().push_back(static_cast<double>(gen.uniform()));
    }
    return s;
  }
};

}  // namespace progdiff::prune

#pragma once
// MagnitudeImportance: a channel's importance is the norm of all weights of its dependency
// group that belong to it (rows it produces, its GroupNorm affine values, columns that consume
// it), the L1 criterion of Li et al. 2017 ("Pruning Filters for Efficient ConvNets") extended
// to groups as DepGraph does, or the L2 norm.
#include <cmath>
#include <cstdint>

#include "progdiff/prune/group_parameters.hpp"
#include "progdiff/prune/importance.hpp"

namespace progdiff::prune {

enum class Norm { l1, l2 };

/// score_j = sum |w| (L1) or sqrt(sum w^2) (L2) over the weights of channel j's group slices.
struct MagnitudeImportance {
  Norm norm = Norm::l2;

  template <class Net>
  ChannelScores scores(Net& net, const ChannelGroups& groups) const {
    const HostParameters p = HostParameters::of(net);
    ChannelScores s;
    for (const auto& g : groups.groups) {
      s.emplace_back();
      for (std::int64_t j = 0; j < g.width; ++j) {
        double acc = 0.0;
        for_each_channel_element(g, p.shapes, j, [&](const ChannelSlice& sl, std::int64_t i) {
          const double w = p.at(sl.parameter)[static_cast<std::size_t>(i)];
          acc += norm == Norm::l1 ? std::abs(w) : w * w;
        });
        s.back().push_back(norm == Norm::l1 ? acc : std::sqrt(acc));
      }
    }
    return s;
  }
};

}  // namespace progdiff::prune

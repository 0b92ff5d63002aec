#pragma once
// The pruning problem of a U-Net as a SearchSpace (prune/search_space.hpp), so a proxy search can
// choose per-group widths, and the application of its answer:
//
//   auto space  = prune::unet_search_space(net, flops_limit, timesteps);  // prunable groups
//   Scheme best = ...search over space...;
//   auto small  = prune::apply_scheme(net, space, best, prune::MagnitudeImportance{});
//
// Layers of the space are the prunable channel groups of prune/unet_channel_groups.hpp, named as
// there, with step = the group's segment count and min_width = step, raised by steps where the
// narrowest model would otherwise give a projecting ResBlock equal input and output widths. Its FLOPs function is the
// model's FLOPs of one sample; widths that would turn a projecting ResBlock into an identity residual (equal input and
// output widths) cost +infinity, so no valid scheme contains them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "progdiff/prune/prune_unet.hpp"
#include "progdiff/prune/scheme.hpp"
#include "progdiff/prune/search_space.hpp"

namespace progdiff::prune {

namespace detail {
// Full group widths from the widths of the space's (prunable) layers.
inline std::vector<std::int64_t> group_widths(const ChannelGroups& groups, const SearchSpace& space,
                                              std::span<const std::int64_t> layer_widths) {
  require(layer_widths.size() == space.size(), "unet search space: " + std::to_string(layer_widths.size()) +
                                                   " widths for " + std::to_string(space.size()) + " layers");
  std::vector<std::int64_t> w = groups.widths();
  for (std::size_t i = 0; i < space.size(); ++i) w[groups.index_of(space.layers[i].name)] = layer_widths[i];
  return w;
}
}  // namespace detail

/// The SearchSpace of `net` with FLOPs limit `flops_limit` (per sample) and timesteps T(i).
template <class Net>
SearchSpace unet_search_space(const Net& net, double flops_limit, std::vector<std::int64_t> timesteps = {}) {
  const ChannelGroups groups = channel_groups(net);
  SearchSpace space;
  std::vector<std::size_t> index;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const ChannelGroup& group = groups.groups[g];
    if (!group.prunable) continue;
    space.layers.push_back(PrunableLayer{group.name, group.width, group.min_width(), group.step()});
    index.push_back(g);
  }
  // The narrowest model must be feasible: raise the minimum of a projecting block's output (or,
  // when it is full, of an input) a step at a time until no block has equal widths.
  for (bool changed = true; changed;) {
    changed = false;
    std::vector<std::int64_t> w = groups.widths();
    for (std::size_t i = 0; i < index.size(); ++i) w[index[i]] = space.layers[i].min_width;
    for (const auto& p : groups.projections) {
      std::int64_t in = 0;
      for (std::size_t k : p.inputs) in += w[k];
      if (in != w[p.output]) continue;
      std::vector<std::size_t> candidates{p.output};
      candidates.insert(candidates.end(), p.inputs.begin(), p.inputs.end());
      for (std::size_t g : candidates) {
        const auto at = std::find(index.begin(), index.end(), g);
        if (at == index.end()) continue;
        PrunableLayer& l = space.layers[static_cast<std::size_t>(at - index.begin())];
        if (l.min_width + l.step > l.width) continue;
        l.min_width += l.step;
        changed = true;
        break;
      }
      if (changed) break;
    }
  }
  space.flops = [groups, index](std::span<const std::int64_t> widths) {
    std::vector<std::int64_t> w = groups.widths();
    for (std::size_t i = 0; i < index.size() && i < widths.size(); ++i) w[index[i]] = widths[i];
    for (const auto& p : groups.projections) {
      std::int64_t in = 0;
      for (std::size_t k : p.inputs) in += w[k];
      if (in == w[p.output]) return std::numeric_limits<double>::infinity();
    }
    return groups.flops(w);
  };
  space.flops_limit = flops_limit;
  space.timesteps = std::move(timesteps);
  space.description = "U-Net of " + std::to_string(space.size()) + " prunable channel groups, " +
                      std::to_string(groups.flops()) + " FLOPs per sample unpruned";
  return space;
}

/// The model pruned to `scheme`'s widths (checked by validate_scheme), channels chosen by
/// `policy_or_scores` (an ImportancePolicy or ChannelScores).
template <class Net, class PolicyOrScores>
Net apply_scheme(Net& net, const SearchSpace& space, const Scheme& scheme, PolicyOrScores&& policy_or_scores) {
  validate_scheme(space, scheme);
  const std::vector<std::int64_t> w = detail::group_widths(channel_groups(net), space, scheme.widths);
  return prune_unet(net, std::forward<PolicyOrScores>(policy_or_scores), std::span<const std::int64_t>(w));
}

}  // namespace progdiff::prune

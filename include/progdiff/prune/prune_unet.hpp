#pragma once
// prune_unet: structural pruning of a U-Net to given group widths. The result is a smaller dense
// model of the same type, built from a new width table, holding the kept channels' weights.
//
//   auto groups = prune::channel_groups(net);                 // dependency groups, by layer
//   auto widths = groups.widths();  widths[groups.index_of("down.1.res.0")] = 96;
//   auto small  = prune::prune_unet(net, prune::MagnitudeImportance{prune::Norm::l1}, widths);
//   // or by name: prune::prune_unet(net, policy, {{"down.1.res.0", 96}, {"temb.hidden", 128}});
//   // or with scores of one's own: prune::prune_unet(net, scores, widths);
//
// Works for UNet<...> and MultiDecoderUNet<...> (prune/pruned_model.hpp). Within each group,
// every segment (GroupNorm group, attention head) keeps its highest-scored channels, in their
// original order (ties keep the lower index). Where an attention block's head width d shrinks to
// d', its query rows are multiplied by sqrt(d'/d), so q . k / sqrt(d') over the kept channels
// equals the original q . k / sqrt(d) over them: removing channels that contribute nothing to q . k
// leaves the attention weights unchanged.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "progdiff/prune/group_parameters.hpp"
#include "progdiff/prune/importance.hpp"
#include "progdiff/prune/pruned_model.hpp"

namespace progdiff::prune {

/// The channels of a group of `scores.size()` channels in `segments` equal segments to keep when
/// it keeps `target` of them: the target / segments best of each segment, ascending.
inline std::vector<std::int64_t> kept_channels(const std::vector<double>& scores, std::int64_t segments,
                                               std::int64_t target) {
  const auto width = static_cast<std::int64_t>(scores.size());
  require(segments > 0 && width % segments == 0 && target % segments == 0 && target > 0 && target <= width,
          "kept_channels: cannot keep " + std::to_string(target) + " of " + std::to_string(width) + " channels in " +
              std::to_string(segments) + " equal segments");
  const std::int64_t size = width / segments, keep = target / segments;
  std::vector<std::int64_t> kept;
  for (std::int64_t s = 0; s < segments; ++s) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(size));
    std::iota(idx.begin(), idx.end(), s * size);
    std::stable_sort(idx.begin(), idx.end(), [&](std::int64_t a, std::int64_t b) {
      return scores[static_cast<std::size_t>(a)] > scores[static_cast<std::size_t>(b)];
    });
    idx.resize(static_cast<std::size_t>(keep));
    std::sort(idx.begin(), idx.end());
    kept.insert(kept.end(), idx.begin(), idx.end());
  }
  return kept;
}

/// Group widths from widths by group or layer name; unnamed groups keep their width.
inline std::vector<std::int64_t> widths_by_name(const ChannelGroups& groups,
                                                const std::map<std::string, std::int64_t>& named) {
  std::vector<std::int64_t> w = groups.widths();
  for (const auto& [name, width] : named) w[groups.index_of(name)] = width;
  return w;
}

/// The model of the same type whose group g keeps widths[g] channels, chosen by `scores`.
/// ConfigError names the group or block when the widths are not feasible (prune/channel_groups.hpp).
template <class Net>
Net prune_unet(Net& net, const ChannelScores& scores, std::span<const std::int64_t> widths) {
  using T = typename Net::value_type;
  using B = typename Net::backend_type;
  const ChannelGroups groups = channel_groups(net);
  expect_scores_fit(scores, groups, "prune_unet");
  groups.expect_feasible(widths, "prune_unet");

  // keep[g][j]: whether channel j of group g stays.
  std::vector<std::vector<bool>> keep;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const ChannelGroup& group = groups.groups[g];
    keep.emplace_back(static_cast<std::size_t>(group.width), false);
    for (std::int64_t j : kept_channels(scores[g], group.segments, widths[g]))
      keep.back()[static_cast<std::size_t>(j)] = true;
  }
  // Per parameter and axis, the slices that prune it.
  struct AxisCut {
    std::size_t group;
    const ChannelSlice* slice;
  };
  std::map<std::string, std::vector<AxisCut>> cuts;
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (const auto& s : groups.groups[g].slices) cuts[s.parameter].push_back({g, &s});

  Net pruned = rebuild_with_widths(net, groups, widths);
  auto old_params = parameters_by_name(net);
  auto new_params = parameters_by_name(pruned);
  for (auto& [name, np] : new_params) {
    const auto it = old_params.find(name);
    require(it != old_params.end(), "prune_unet: the pruned model has a parameter '" + name + "' the model lacks");
    const Shape old_shape = it->second->value.shape();
    const int rank = old_shape.rank();
    // The old indices kept along each axis, in order.
    std::vector<std::vector<std::int64_t>> kept_index(static_cast<std::size_t>(rank));
    std::vector<double> row_scale;  // per kept index of axis 0 (query rows of attention)
    for (int a = 0; a < rank; ++a) {
      std::vector<bool> k(static_cast<std::size_t>(old_shape[a]), true);
      std::vector<double> scale(static_cast<std::size_t>(old_shape[a]), 1.0);
      for (const auto& c : cuts[name]) {
        if (c.slice->axis != a) continue;
        const ChannelGroup& group = groups.groups[c.group];
        for (std::int64_t j = 0; j < group.width; ++j)
          k[static_cast<std::size_t>(c.slice->offset + j)] = keep[c.group][static_cast<std::size_t>(j)];
        if (c.slice->role == SliceRole::score && c.slice->offset == 0 && group.attention)
          for (std::int64_t j = 0; j < group.width; ++j)
            scale[static_cast<std::size_t>(j)] = std::sqrt(double(widths[c.group]) / double(group.width));
      }
      for (std::int64_t i = 0; i < old_shape[a]; ++i)
        if (k[static_cast<std::size_t>(i)]) {
          kept_index[static_cast<std::size_t>(a)].push_back(i);
          if (a == 0) row_scale.push_back(scale[static_cast<std::size_t>(i)]);
        }
    }
    std::vector<std::int64_t> dims;
    for (const auto& v : kept_index) dims.push_back(static_cast<std::int64_t>(v.size()));
    const Shape new_shape = np->value.shape();
    bool same = new_shape.rank() == rank;
    for (int a = 0; same && a < rank; ++a) same = new_shape[a] == dims[static_cast<std::size_t>(a)];
    if (!same) {
      std::string got;
      for (auto d : dims) got += (got.empty() ? "" : ", ") + std::to_string(d);
      throw ShapeError("prune_unet: parameter '" + name + "' of shape " + old_shape.str() + " prunes to [" + got +
                       "], but the pruned model's has shape " + new_shape.str());
    }
    const std::vector<T> old_values = it->second->value.to_host();
    std::vector<std::int64_t> old_stride(static_cast<std::size_t>(rank), 1);
    for (int a = rank - 2; a >= 0; --a) old_stride[a] = old_stride[a + 1] * old_shape[a + 1];
    std::vector<T> values(static_cast<std::size_t>(new_shape.numel()));
    std::vector<std::int64_t> pos(static_cast<std::size_t>(rank), 0);
    for (std::size_t flat = 0; flat < values.size(); ++flat) {
      std::int64_t src = 0;
      for (int a = 0; a < rank; ++a) src += kept_index[a][static_cast<std::size_t>(pos[a])] * old_stride[a];
      values[flat] =
          static_cast<T>(old_values[static_cast<std::size_t>(src)] * row_scale[static_cast<std::size_t>(pos[0])]);
      for (int a = rank - 1; a >= 0; --a) {
        if (++pos[a] < dims[static_cast<std::size_t>(a)]) break;
        pos[a] = 0;
      }
    }
    B::template copy_from_host<T>(np->value.data(), values.data(), values.size());
  }
  return pruned;
}

/// prune_unet with the scores of an importance policy.
template <class Net, class Policy>
requires(!std::same_as<std::remove_cvref_t<Policy>, ChannelScores>) Net
    prune_unet(Net& net, Policy&& policy, std::span<const std::int64_t> widths) {
  static_assert(check_importance_policy<std::remove_cvref_t<Policy>, Net>());
  return prune_unet(net, ChannelScores(policy.scores(net, channel_groups(net))), widths);
}

/// prune_unet with widths by group or layer name (unnamed groups keep their width).
template <class Net, class PolicyOrScores>
Net prune_unet(Net& net, PolicyOrScores&& policy, const std::map<std::string, std::int64_t>& widths) {
  const std::vector<std::int64_t> w = widths_by_name(channel_groups(net), widths);
  return prune_unet(net, std::forward<PolicyOrScores>(policy), std::span<const std::int64_t>(w));
}

}  // namespace progdiff::prune

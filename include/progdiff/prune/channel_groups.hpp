#pragma once
// ChannelGroups: the channel dependency groups of a network, the unit of structural pruning
// (Fang et al. 2023, "DepGraph"; Diff-Pruning prunes the same groups). A group is one channel
// axis that several parameters share: removing channel j of the group removes, in every listed
// parameter slice, the index offset + j along the slice's axis. What this file holds is model
// independent; prune/unet_channel_groups.hpp derives the groups of a U-Net from its type.
//
// Besides the slices, a group carries
//   * `segments`: its channels come off in equal numbers from each of `segments` contiguous
//     segments (the groups of the GroupNorms that normalize it, the heads of an attention block
//     on it), so every GroupNorm group and head keeps its members and stays the same size;
//   * `prunable`: false for axes the model fixes (the sinusoid width of the time embedding).
// A ProjectionConstraint records a residual block whose skip path is a 1x1 convolution because
// its input and output widths differ: a pruning that made them equal would change the block's
// structure (the block would become an identity residual), so such widths are infeasible.
// FlopsTerms give the model's FLOPs as a function of the group widths without building it.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::prune {

/// What a parameter slice holds for each channel of its group.
enum class SliceRole {
  channel,   // values of the channel itself: conv / linear rows, biases, GroupNorm gamma and beta
  consumer,  // columns of a layer that reads the channel (conv / linear input axis)
  score,     // attention query and key rows: the channel enters only through q . k
};

/// Channel j of a group is index offset + j along `axis` of parameter `parameter`.
struct ChannelSlice {
  std::string parameter;  // full name, as the model's visit_parameters spells it
  int axis = 0;
  std::int64_t offset = 0;
  SliceRole role = SliceRole::channel;
};

/// One channel dependency group: channels that are removed together.
struct ChannelGroup {
  std::string name;                 // the first width-table layer of the group
  std::vector<std::string> layers;  // every width-table layer whose width is this group's width
  std::int64_t width = 0;
  std::int64_t segments = 1;  // equal removal from each of this many contiguous segments
  bool prunable = true;
  bool attention = false;  // an attention block works on this axis (its query rows get rescaled)
  std::vector<ChannelSlice> slices;

  /// Channels come off in multiples of `step`, and at least `min_width` stay.
  std::int64_t step() const { return segments; }
  std::int64_t min_width() const { return segments; }
  /// Whether `w` is a width this group may take.
  bool allows(std::int64_t w) const {
    if (!prunable) return w == width;
    return w >= min_width() && w <= width && w % segments == 0;
  }
};

/// A residual block with a 1x1 skip convolution: the sum of the widths of `inputs` (one group,
/// or two for a decoder block's concatenation) must differ from the width of `output`.
struct ProjectionConstraint {
  std::string block;
  std::vector<std::size_t> inputs;
  std::size_t output = 0;
};

/// One summand of the FLOPs model: coefficient * (sum of widths a + constant a) * (... b).
struct FlopsTerm {
  double coefficient = 0.0;
  std::vector<std::size_t> a;
  std::int64_t a_constant = 0;
  std::vector<std::size_t> b;
  std::int64_t b_constant = 0;
  double weight = 1.0;  // how much the term counts in the total (1 / K for one of K decoders)
};

/// The channel groups of one model, their constraints and FLOPs model.
struct ChannelGroups {
  std::vector<ChannelGroup> groups;
  std::vector<ProjectionConstraint> projections;
  std::vector<FlopsTerm> flops_terms;  // FLOPs of one sample

  std::size_t size() const { return groups.size(); }

  /// Index of the group called `name` or listing `name` among its layers; ConfigError otherwise.
  std::size_t index_of(const std::string& name) const {
    for (std::size_t i = 0; i < groups.size(); ++i) {
      if (groups[i].name == name) return i;
      for (const auto& l : groups[i].layers)
        if (l == name) return i;
    }
    throw ConfigError("channel groups: no group or layer named '" + name + "'");
  }

  std::vector<std::int64_t> widths() const {
    std::vector<std::int64_t> w;
    for (const auto& g : groups) w.push_back(g.width);
    return w;
  }

  /// Empty when `widths` is a feasible pruning of these groups, else why not (naming the group
  /// or block).
  std::string infeasibility(std::span<const std::int64_t> widths) const {
    if (widths.size() != groups.size())
      return std::to_string(widths.size()) + " widths given for " + std::to_string(groups.size()) + " channel groups";
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const ChannelGroup& g = groups[i];
      if (!g.allows(widths[i])) {
        if (!g.prunable) return "group '" + g.name + "' is not prunable (width " + std::to_string(g.width) + ")";
        return "group '" + g.name + "' cannot take width " + std::to_string(widths[i]) + ": allowed are multiples of " +
               std::to_string(g.step()) + " in [" + std::to_string(g.min_width()) + ", " + std::to_string(g.width) +
               "]";
      }
    }
    for (const auto& p : projections) {
      std::int64_t in = 0;
      for (std::size_t i : p.inputs) in += widths[i];
      if (in == widths[p.output])
        return "block '" + p.block + "' would get equal input and output widths (" + std::to_string(in) +
               "), which turns its 1x1 skip convolution into an identity";
    }
    return {};
  }
  bool feasible(std::span<const std::int64_t> widths) const { return infeasibility(widths).empty(); }
  /// ConfigError with the reason unless `widths` is feasible; `what` names the caller.
  void expect_feasible(std::span<const std::int64_t> widths, const std::string& what) const {
    const std::string why = infeasibility(widths);
    if (!why.empty()) throw ConfigError(what + ": " + why);
  }

  /// FLOPs of one sample (multiply-add = 2) when group i has widths[i] channels.
  double flops(std::span<const std::int64_t> widths) const {
    require(widths.size() == groups.size(), "channel groups: " + std::to_string(widths.size()) + " widths given for " +
                                                std::to_string(groups.size()) + " groups");
    double total = 0.0;
    for (const auto& t : flops_terms) {
      std::int64_t a = t.a_constant, b = t.b_constant;
      for (std::size_t i : t.a) a += widths[i];
      for (std::size_t i : t.b) b += widths[i];
      total += t.weight * t.coefficient * static_cast<double>(a) * static_cast<double>(b);
    }
    return total;
  }
  double flops() const { return flops(widths()); }
};

}  // namespace progdiff::prune

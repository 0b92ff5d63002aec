#pragma once
// SearchSpace: the pruning problem of eq. 14 (Step-Adaptive Training; eq. 9 of TDC Training) in
// terms that need no model: minimise the loss on a group's timesteps over the widths of the
// prunable layers, subject to FLOPs(widths) <= FLOPs_g(i), the group's limit from eq. 9.
//
// A model is adapted to it by listing its prunable channel groups and giving a function from
// their widths to the model's FLOPs:
//
//   * PrunableLayer: one channel group that is pruned as a unit (a conv's output channels and
//     everything that consumes them). `width` is its width before pruning, `min_width` the fewest
//     channels it may keep, `step` the granularity: channels come off in multiples of `step`
//     (e.g. the channels per GroupNorm group), so an allowed width is width - k * step >= min_width.
//   * flops: total FLOPs of the model for one width per layer, in the order of `layers`.
//   * flops_limit: FLOPs_g(i) of eq. 9, the most a pruned model of this group may cost.
//   * timesteps: T(i), the grid indices of the group (eq. 10); the loss of a scheme is measured on
//     them. Informational for the search itself (a proxy shows them in its prompt).
//
// Schemes over this space are in prune/scheme.hpp; the search over them in prune/proxy_pruning.hpp.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::prune {

namespace detail {
/// A number for messages and prompts: whole numbers in full, others to 6 significant digits.
inline std::string number(double x) {
  std::ostringstream s;
  if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 1e15)
    s << static_cast<long long>(x);
  else
    s << std::setprecision(6) << x;
  return s.str();
}
}  // namespace detail

/// One prunable channel group: its name, unpruned width, fewest channels kept and removal step.
struct PrunableLayer {
  std::string name;
  std::int64_t width = 0;      // channels before pruning
  std::int64_t min_width = 0;  // fewest channels the layer may keep (> 0)
  std::int64_t step = 1;       // channels are removed in multiples of step

  /// Whether `w` is a width this layer may take: min_width <= w <= width, width - w a multiple of step.
  bool allows(std::int64_t w) const { return w >= min_width && w <= width && (width - w) % step == 0; }
  /// The number of allowed widths (min_width, min_width + step, ..., width).
  std::int64_t choices() const { return (width - min_width) / step + 1; }
  /// The allowed width nearest to `w` (ties keep more channels), clamped to [min_width, width].
  std::int64_t nearest_allowed(double w) const {
    if (w >= static_cast<double>(width)) return width;
    if (w <= static_cast<double>(min_width)) return min_width;
    const double removed_steps = (static_cast<double>(width) - w) / static_cast<double>(step);
    const auto k = static_cast<std::int64_t>(removed_steps + 0.5 - 1e-9);  // round half towards the wider width
    const std::int64_t candidate = width - k * step;
    return candidate < min_width ? min_width : candidate;
  }
};

/// FLOPs of the model when layer i has widths[i] channels (widths in the order of SearchSpace::layers).
using FlopsFunction = std::function<double(std::span<const std::int64_t> widths)>;

/// The pruning problem of one timestep group (eqs. 9, 14): layers, a FLOPs model, the limit, T(i).
struct SearchSpace {
  std::vector<PrunableLayer> layers;
  FlopsFunction flops;
  double flops_limit = 0.0;             // FLOPs_g(i), eq. 9
  std::vector<std::int64_t> timesteps;  // T(i), eq. 10 (grid indices)
  std::string description;              // optional: what the model is, shown to a proxy

  std::size_t size() const { return layers.size(); }

  /// Index of the layer called `name`; ConfigError listing the known names if there is none.
  std::size_t index_of(const std::string& name) const {
    for (std::size_t i = 0; i < layers.size(); ++i)
      if (layers[i].name == name) return i;
    std::string known;
    for (const auto& l : layers) known += (known.empty() ? "" : ", ") + l.name;
    throw ConfigError("pruning search space: unknown layer '" + name + "' (layers: " + known + ")");
  }
  bool contains(const std::string& name) const {
    for (const auto& l : layers)
      if (l.name == name) return true;
    return false;
  }

  std::vector<std::int64_t> full_widths() const {
    std::vector<std::int64_t> w;
    for (const auto& l : layers) w.push_back(l.width);
    return w;
  }
  std::vector<std::int64_t> min_widths() const {
    std::vector<std::int64_t> w;
    for (const auto& l : layers) w.push_back(l.min_width);
    return w;
  }

  /// FLOPs of the given widths; ConfigError if their count differs from the layers'.
  double flops_of(std::span<const std::int64_t> widths) const {
    require(widths.size() == layers.size(), "pruning search space: " + std::to_string(widths.size()) +
                                                " widths given for " + std::to_string(layers.size()) + " layers");
    return flops(widths);
  }

  /// Throws ConfigError naming the layer or value unless the space is well formed: layers with
  /// distinct non-empty names, 0 < min_width <= width, step > 0, width - min_width a multiple of
  /// step; a FLOPs function; a positive limit that the narrowest model meets.
  void validate() const {
    require(!layers.empty(), "pruning search space: no prunable layers");
    require(static_cast<bool>(flops), "pruning search space: no FLOPs function");
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto& l = layers[i];
      const std::string where = "pruning search space: layer " + std::to_string(i) + " '" + l.name + "'";
      require(!l.name.empty(), "pruning search space: layer " + std::to_string(i) + " has no name");
      for (std::size_t j = 0; j < i; ++j)
        require(layers[j].name != l.name, where + " has the same name as layer " + std::to_string(j));
      require(l.step > 0, where + ": step " + std::to_string(l.step) + " must be positive");
      require(l.min_width > 0 && l.min_width <= l.width, where + ": min_width " + std::to_string(l.min_width) +
                                                             " must lie in [1, width " + std::to_string(l.width) + "]");
      require((l.width - l.min_width) % l.step == 0, where + ": width " + std::to_string(l.width) +
                                                         " minus min_width " + std::to_string(l.min_width) +
                                                         " is not a multiple of step " + std::to_string(l.step));
    }
    require(flops_limit > 0.0,
            "pruning search space: FLOPs limit " + detail::number(flops_limit) + " must be positive");
    const double narrowest = flops_of(min_widths());
    require(narrowest <= flops_limit,
            "pruning search space: even the narrowest model (every layer at min_width) "
            "costs " +
                detail::number(narrowest) + " FLOPs, over the limit " + detail::number(flops_limit));
  }
};

}  // namespace progdiff::prune

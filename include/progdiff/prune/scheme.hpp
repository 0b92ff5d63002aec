#pragma once
// Scheme: one answer to the pruning problem of a SearchSpace (prune/search_space.hpp), theta' of
// eqs. 12-17 (Step-Adaptive Training) given as the width each prunable layer keeps.
//
// Widths are stored, not ratios, so that two schemes are equal exactly when they prune the same
// number of channels everywhere (the memory bank relies on this to skip schemes it has already
// evaluated). A scheme is built from per-layer widths or per-layer keep ratios by name; a layer
// that is not named keeps its full width. validate_scheme() rejects, with a ConfigError naming
// the layer and the value: unknown layer names, ratios outside (0, 1], widths outside
// [min_width, width] or not reachable in multiples of the step, and schemes over the FLOPs limit.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/prune/search_space.hpp"

namespace progdiff::prune {

/// Widths kept per prunable layer, in the order of SearchSpace::layers.
struct Scheme {
  std::vector<std::int64_t> widths;

  /// The unpruned model.
  static Scheme full(const SearchSpace& space) { return Scheme{space.full_widths()}; }

  /// Kept fraction of layer i's channels.
  double keep_ratio(const SearchSpace& space, std::size_t i) const {
    return static_cast<double>(widths.at(i)) / static_cast<double>(space.layers.at(i).width);
  }
  std::vector<double> keep_ratios(const SearchSpace& space) const {
    std::vector<double> r;
    for (std::size_t i = 0; i < widths.size(); ++i) r.push_back(keep_ratio(space, i));
    return r;
  }

  friend bool operator==(const Scheme&, const Scheme&) = default;
};

namespace detail {
inline std::string layer_label(const SearchSpace& space, std::size_t i) {
  return "layer '" + space.layers[i].name + "'";
}
}  // namespace detail

/// Throws ConfigError unless width w is allowed for layer i (names the layer, the width and why).
inline void validate_width(const SearchSpace& space, std::size_t i, std::int64_t w) {
  const PrunableLayer& l = space.layers.at(i);
  const std::string what = "pruning scheme: " + detail::layer_label(space, i) + " width " + std::to_string(w);
  require(w >= l.min_width && w <= l.width,
          what + " is outside [min_width " + std::to_string(l.min_width) + ", width " + std::to_string(l.width) + "]");
  require((l.width - w) % l.step == 0, what + " is not reachable: channels come off in multiples of " +
                                           std::to_string(l.step) + " from " + std::to_string(l.width));
}

/// Checks every width and the FLOPs limit; returns the scheme's FLOPs. ConfigError on any violation.
inline double validate_scheme(const SearchSpace& space, const Scheme& scheme) {
  require(scheme.widths.size() == space.size(), "pruning scheme: " + std::to_string(scheme.widths.size()) +
                                                    " widths for " + std::to_string(space.size()) + " layers");
  for (std::size_t i = 0; i < space.size(); ++i) validate_width(space, i, scheme.widths[i]);
  const double f = space.flops(scheme.widths);
  require(f <= space.flops_limit, "pruning scheme: " + detail::number(f) + " FLOPs exceed the group's limit " +
                                      detail::number(space.flops_limit) + " (eq. 9)");
  return f;
}

/// Whether the scheme passes validate_scheme (no exception).
inline bool is_valid_scheme(const SearchSpace& space, const Scheme& scheme) {
  if (scheme.widths.size() != space.size()) return false;
  for (std::size_t i = 0; i < space.size(); ++i)
    if (!space.layers[i].allows(scheme.widths[i])) return false;
  return space.flops(scheme.widths) <= space.flops_limit;
}

/// A scheme from widths by layer name; unnamed layers keep their full width. Each width is checked
/// (unknown names, out-of-range or unreachable widths); the FLOPs limit is not (see validate_scheme).
inline Scheme scheme_from_widths(const SearchSpace& space, const std::map<std::string, std::int64_t>& widths) {
  Scheme s = Scheme::full(space);
  for (const auto& [name, w] : widths) {
    const std::size_t i = space.index_of(name);
    validate_width(space, i, w);
    s.widths[i] = w;
  }
  return s;
}

/// A scheme from keep ratios by layer name; unnamed layers keep ratio 1. A ratio r in (0, 1] keeps
/// the allowed width nearest r * width; a ratio outside (0, 1], or one whose nearest width is
/// below min_width, is a ConfigError naming the layer and the ratio. The FLOPs limit is not checked.
inline Scheme scheme_from_ratios(const SearchSpace& space, const std::map<std::string, double>& ratios) {
  Scheme s = Scheme::full(space);
  for (const auto& [name, r] : ratios) {
    const std::size_t i = space.index_of(name);
    const PrunableLayer& l = space.layers[i];
    const std::string what = "pruning scheme: " + detail::layer_label(space, i) + " keep ratio " + detail::number(r);
    require(std::isfinite(r) && r > 0.0 && r <= 1.0, what + " is outside (0, 1]");
    const double target = r * static_cast<double>(l.width);
    // Nearest width on the step grid, without the clamp of nearest_allowed: too small a ratio is an error.
    const double removed =
        std::floor((static_cast<double>(l.width) - target) / static_cast<double>(l.step) + 0.5 - 1e-9);
    const std::int64_t w = l.width - static_cast<std::int64_t>(removed) * l.step;
    require(w >= l.min_width, what + " keeps " + std::to_string(w) + " channels, fewer than min_width " +
                                  std::to_string(l.min_width) + " (smallest ratio " +
                                  detail::number(static_cast<double>(l.min_width) / static_cast<double>(l.width)) +
                                  ")");
    s.widths[i] = w;
  }
  return s;
}

/// One line per layer: "name: kept/width (ratio)", then the FLOPs against the limit.
inline std::string describe_scheme(const SearchSpace& space, const Scheme& scheme) {
  std::string out;
  for (std::size_t i = 0; i < space.size() && i < scheme.widths.size(); ++i)
    out += space.layers[i].name + ": " + std::to_string(scheme.widths[i]) + "/" +
           std::to_string(space.layers[i].width) + " (" + detail::number(scheme.keep_ratio(space, i)) + ")\n";
  if (scheme.widths.size() == space.size())
    out += "FLOPs: " + detail::number(space.flops(scheme.widths)) + " of limit " + detail::number(space.flops_limit) +
           "\n";
  return out;
}

}  // namespace progdiff::prune

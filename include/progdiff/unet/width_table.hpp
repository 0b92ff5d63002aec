#pragma once
// WidthTable: the run-time channel width of every layer of a U-Net, by layer name. The
// structure (which layers exist) is the type's; the widths are values, so a pruned model keeps
// its type and differs only in its table.
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::unet {

/// Output width of one layer ("down.1.res.0": channels out of that ResBlock).
struct LayerWidth {
  std::string layer;
  std::int64_t channels = 0;

  friend bool operator==(const LayerWidth&, const LayerWidth&) = default;
};

/// The widths of a U-Net part in forward order. Names:
///   encoder: temb.sinusoid, temb.hidden, temb.out, conv_in, down.<l>.res.<j>, down.<l>.downsample
///            (l < levels - 1), mid.res.0, mid.res.1
///   decoder: up.<l>.res.<j> (j <= res_blocks), up.<l>.upsample (l > 0), levels from the coarsest.
struct WidthTable {
  std::vector<LayerWidth> layers;

  std::size_t size() const { return layers.size(); }
  friend bool operator==(const WidthTable&, const WidthTable&) = default;

  /// The width of `layer`; ConfigError when the table has no such layer.
  std::int64_t at(const std::string& layer) const {
    for (const auto& w : layers)
      if (w.layer == layer) return w.channels;
    throw ConfigError("WidthTable: no layer named '" + layer + "'");
  }
};

/// Throws ConfigError unless `table` lists exactly the layers named by `expected`, in order,
/// each with a positive width; `what` names the model part in the message.
inline void expect_layers(const WidthTable& table, const std::vector<std::string>& expected, const std::string& what) {
  if (table.size() != expected.size()) {
    std::string names;
    for (const auto& n : expected) names += (names.empty() ? "" : ", ") + n;
    throw ConfigError(what + " width table: expected " + std::to_string(expected.size()) + " layers (" + names +
                      "), got " + std::to_string(table.size()));
  }
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& w = table.layers[i];
    if (w.layer != expected[i])
      throw ConfigError(what + " width table: entry " + std::to_string(i) + " is '" + w.layer + "', expected layer '" +
                        expected[i] + "'");
    if (w.channels <= 0)
      throw ConfigError(what + " width table: layer '" + w.layer + "' has " + std::to_string(w.channels) +
                        " channels; widths must be positive");
  }
}

/// Throws ConfigError naming `layer` unless `groups` divides `channels`.
inline void expect_divisible(const std::string& layer, std::int64_t channels, std::int64_t groups,
                             const std::string& what) {
  if (groups <= 0 || channels % groups != 0)
    throw ConfigError(what + ": layer '" + layer + "' has " + std::to_string(channels) +
                      " channels, which the GroupNorm group count " + std::to_string(groups) + " does not divide");
}

}  // namespace progdiff::unet

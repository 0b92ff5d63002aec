#pragma once
// Run-time settings of a U-Net and the default width tables its Spec implies.
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/unet/layout.hpp"
#include "progdiff/unet/spec.hpp"
#include "progdiff/unet/width_table.hpp"

namespace progdiff::unet {

/// The run-time values of a U-Net. from_spec<S>() fills them from the type's defaults.
struct UNetConfig {
  std::int64_t image_size = 32;  // must equal ImageSize<S> when the type fixes it
  std::int64_t groups = 32;      // GroupNorm groups of the encoder (and of a unified decoder)
  double dropout = 0.1;
  std::int64_t heads = 1;   // attention heads
  double eps = 1e-6;        // GroupNorm epsilon (DDPM)
  double time_shift = 1.0;  // sinusoid frequency shift: 1 as DDPM, 0 as diffusers
  double max_period = 10000.0;
  std::int64_t downsample_padding = 1;  // 1: symmetric (PyTorch ports); 0: DDPM's original (diffusers' DDPM models)

  template <class S>
  static UNetConfig from_spec() {
    UNetConfig c;
    c.image_size = S::image_size ? S::image_size : 32;
    c.groups = S::groups;
    c.dropout = S::dropout_percent / 100.0;
    c.heads = S::heads;
    return c;
  }
};

/// Level l's side length, checking the run-time image size against the type's rules.
template <class S>
std::int64_t checked_image_size(const UNetConfig& c) {
  if (S::image_size != 0 && c.image_size != S::image_size)
    throw ConfigError("UNet: the configuration's image size " + std::to_string(c.image_size) +
                      " differs from the type's ImageSize<" + std::to_string(S::image_size) + ">");
  const std::int64_t factor = std::int64_t(1) << (S::level_count - 1);
  if (c.image_size <= 0 || c.image_size % factor != 0)
    throw ConfigError("UNet: image size " + std::to_string(c.image_size) + " is not a positive multiple of " +
                      std::to_string(factor) + " (2^(levels - 1))");
  for (int r : S::attention_resolutions) {
    bool found = false;
    for (int l = 0; l < S::level_count; ++l) found = found || (c.image_size >> l) == r;
    if (!found)
      throw ConfigError("UNet: attention resolution " + std::to_string(r) +
                        " is not the side of any level for image size " + std::to_string(c.image_size));
  }
  return c.image_size;
}

/// Layer names of the encoder's width table, in forward order.
template <class S>
std::vector<std::string> encoder_layers() {
  return layer_names(encoder_layout<S>(0));
}

/// Layer names of a decoder's width table, in forward order (coarsest level first).
template <class S>
std::vector<std::string> decoder_layers() {
  return layer_names(decoder_layout<S>(0));
}

/// The widths of `layout` for base width `base`: each layer has base * its multiplier.
inline WidthTable default_widths_of(const std::vector<LayoutLayer>& layout, std::int64_t base) {
  WidthTable t;
  for (const auto& layer : layout) t.layers.push_back({layer.name, base * layer.multiplier});
  return t;
}

/// The DDPM widths of an encoder of base width `base`: level l has base * multiplier_l
/// channels; the time embedding is sinusoid(base) -> time_multiplier * base twice.
template <class S>
WidthTable default_encoder_widths(std::int64_t base = S::base_channels) {
  return default_widths_of(encoder_layout<S>(0), base);
}

/// The DDPM widths of a decoder of base width `base` (level l: base * multiplier_l).
template <class S>
WidthTable default_decoder_widths(std::int64_t base = S::base_channels) {
  return default_widths_of(decoder_layout<S>(0), base);
}

/// Table `a` followed by table `b`.
inline WidthTable join(const WidthTable& a, const WidthTable& b) {
  WidthTable t = a;
  t.layers.insert(t.layers.end(), b.layers.begin(), b.layers.end());
  return t;
}

}  // namespace progdiff::unet

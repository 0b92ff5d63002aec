#pragma once
// How a diffusers UNet2DModel config and a progdiff U-Net type correspond.
//
// The type fixes the structure (levels, ResBlocks per level, attention resolutions, image
// channels, and the image side when it has ImageSize<S>); block_out_channels and the other
// sizes are run-time values, so they become the width table and UNetConfig. diffusers' blocks
// and progdiff's layers line up one to one:
//   time_embedding.linear_{1,2}  <- sinusoid(block_out_channels[0])   temb (width 4 * boc[0])
//   down_blocks.l: resnets.j (+ attentions.j), downsamplers.0        down.l.res.j (+ attn.j), down.l.downsample
//   mid_block: resnets.0, attentions.0, resnets.1                    mid.res.0, mid.attn, mid.res.1
//   up_blocks.i (i = L - 1 - l): layers_per_block + 1 resnets       up.l.res.j (+ attn.j), up.l.upsample
// with the same skips (conv_in, each resnet, each downsampler) concatenated after the features.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/interop/diffusers_config.hpp"
#include "progdiff/unet/config.hpp"

namespace progdiff::interop {

/// A U-Net type that a UNet2DModel can stand for: diffusers attends after every ResBlock of an
/// attention level, in encoder and decoder alike, and in the middle block.
template <class Net>
inline constexpr bool diffusers_expressible = Net::spec::attention_every_block&& Net::spec::decoders == 0;

template <class Net>
constexpr void check_diffusers_expressible() {
  static_assert(Net::spec::decoders == 0,
                "progdiff::interop: a UNet2DModel has one decoder; export a MultiDecoderUNet's decoders as "
                "separate models is not supported");
  static_assert(Net::spec::attention_every_block,
                "progdiff::interop: diffusers' AttnDownBlock2D / AttnUpBlock2D attend after every ResBlock and the "
                "middle block attends; the U-Net type needs the DdpmAttention layout, not SingleEncoderAttention");
}

namespace detail {
inline std::string join_lines(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += "\n  - " + l;
  return s;
}
inline std::string block_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}
}  // namespace detail

/// The image side a config gives the type: the config's sample_size, or the type's ImageSize
/// when the config has none (0 when neither does).
template <class Net>
std::int64_t diffusers_image_size(const DiffusersUNetConfig& c) {
  return c.sample_size > 0 ? c.sample_size : Net::spec::image_size;
}

/// Every way `c` differs from what the U-Net type `Net` can hold, one sentence each; empty
/// when the config fits.
template <class Net>
std::vector<std::string> diffusers_structure_mismatches(const DiffusersUNetConfig& c) {
  using S = typename Net::spec;
  std::vector<std::string> out;
  const auto str = [](auto v) { return std::to_string(v); };
  if (c.levels() != S::level_count)
    out.push_back("block_out_channels has " + str(c.levels()) + " levels, the type's Levels<...> has " +
                  str(S::level_count));
  if (c.layers_per_block != S::res_blocks)
    out.push_back("layers_per_block is " + str(c.layers_per_block) + ", the type has ResBlocks<" + str(S::res_blocks) +
                  ">");
  if (c.in_channels != S::image_channels)
    out.push_back("in_channels is " + str(c.in_channels) + ", the type has ImageChannels<" + str(S::image_channels) +
                  ">");
  if (c.out_channels != S::output_channels)
    out.push_back("out_channels is " + str(c.out_channels) + ", the type has " +
                  (S::learned_variance ? "2 x ImageChannels<" + str(S::image_channels) + "> (LearnedVariance)"
                                       : "ImageChannels<" + str(S::image_channels) + ">"));
  if (S::image_size != 0 && c.sample_size != 0 && c.sample_size != S::image_size)
    out.push_back("sample_size is " + str(c.sample_size) + ", the type has ImageSize<" + str(S::image_size) + ">");
  const std::int64_t side = diffusers_image_size<Net>(c);
  if (side == 0) out.push_back("sample_size is null and the type has no ImageSize<S> to place attention by");
  if (side != 0 && c.levels() == S::level_count) {
    for (std::int64_t l = 0; l < c.levels(); ++l) {
      const bool type_attends = unet::attends_at<S>(side >> l);
      const std::string where = "level " + str(l) + " (" + str(side >> l) + "x" + str(side >> l) + ")";
      if (c.down_attends(l) != type_attends)
        out.push_back("down_block_types[" + str(l) + "] is " + c.down_block_types[static_cast<std::size_t>(l)] + ": " +
                      where + (type_attends ? " attends" : " does not attend") + " in the type's AttentionAt<...>");
      if (c.up_attends(l) != type_attends)
        out.push_back("up_block_types[" + str(c.levels() - 1 - l) + "] is " +
                      c.up_block_types[static_cast<std::size_t>(c.levels() - 1 - l)] + ": " + where +
                      (type_attends ? " attends" : " does not attend") + " in the type's AttentionAt<...>");
    }
  }
  if (!c.add_attention)
    out.push_back("add_attention is false: the type's DdpmAttention layout attends in the middle block");
  // progdiff has one head count for every attention block; diffusers has one head size.
  if (c.attention_head_dim != 0 && c.levels() > 0) {
    std::vector<std::int64_t> widths;
    for (std::int64_t l = 0; l < c.levels(); ++l)
      if (c.down_attends(l) || c.up_attends(l)) widths.push_back(c.block_out_channels[static_cast<std::size_t>(l)]);
    widths.push_back(c.block_out_channels.back());  // the middle block
    for (auto w : widths) {
      if (w % c.attention_head_dim != 0 || c.heads_at(w) != c.heads_at(widths.front()))
        out.push_back("attention_head_dim " + str(c.attention_head_dim) +
                      " gives attention blocks of different head counts (or does not divide width " + str(w) +
                      "); progdiff has one head count for all (supported: null, or a head size giving every "
                      "attention block the same number of heads)");
      if (!out.empty() && out.back().rfind("attention_head_dim", 0) == 0) break;
    }
  }
  return out;
}

/// Throws a ConfigError that lists every mismatch, prefixed by `source` (the config.json path).
template <class Net>
void check_diffusers_structure(const DiffusersUNetConfig& c, const std::string& source) {
  check_diffusers_expressible<Net>();
  const auto m = diffusers_structure_mismatches<Net>(c);
  if (!m.empty())
    throw ConfigError(source + ": the UNet2DModel does not fit the U-Net type (" + std::to_string(m.size()) +
                      " mismatch" + (m.size() > 1 ? "es" : "") + "):" + detail::join_lines(m));
}

/// The index of the first of the U-Net types `Nets` that can hold `c` (a program built for a
/// few types picks the one a folder needs); when none can, a ConfigError prefixed by `source`
/// that lists, under each type's name in `names`, every mismatch (the key, its value and what
/// the type has).
template <class... Nets>
std::size_t diffusers_fitting_type(const DiffusersUNetConfig& c, const std::string& source,
                                   const std::array<std::string, sizeof...(Nets)>& names) {
  (check_diffusers_expressible<Nets>(), ...);
  const std::array<std::vector<std::string>, sizeof...(Nets)> mismatches{diffusers_structure_mismatches<Nets>(c)...};
  for (std::size_t i = 0; i < mismatches.size(); ++i)
    if (mismatches[i].empty()) return i;
  std::string text = source + ": the UNet2DModel fits none of the " + std::to_string(sizeof...(Nets)) +
                     " U-Net types this program is built for:";
  for (std::size_t i = 0; i < mismatches.size(); ++i) {
    text += "\n  " + names[i] + ":";
    for (const auto& m : mismatches[i]) text += "\n    - " + m;
  }
  throw ConfigError(text);
}

/// The run-time settings of the progdiff U-Net a (checked) config describes.
template <class Net>
unet::UNetConfig unet_config_from_diffusers(const DiffusersUNetConfig& c) {
  unet::UNetConfig u = Net::default_config();
  u.image_size = diffusers_image_size<Net>(c);
  u.groups = c.norm_num_groups;
  u.dropout = c.dropout;
  u.heads = c.heads_at(c.block_out_channels.back());
  u.eps = c.norm_eps;
  u.time_shift = c.freq_shift;
  u.max_period = 10000.0;
  u.downsample_padding = c.downsample_padding;
  return u;
}

/// The width table of a (checked) config: level l's layers all have block_out_channels[l].
template <class Net>
unet::WidthTable widths_from_diffusers(const DiffusersUNetConfig& c) {
  using S = typename Net::spec;
  unet::WidthTable t;
  const auto w = [&](int l) { return c.block_out_channels.at(static_cast<std::size_t>(l)); };
  for (const auto& name : unet::encoder_layers<S>()) t.layers.push_back({name, 0});
  for (const auto& name : unet::decoder_layers<S>()) t.layers.push_back({name, 0});
  for (auto& layer : t.layers) {
    const std::string& n = layer.layer;
    if (n == "temb.sinusoid" || n == "conv_in")
      layer.channels = w(0);
    else if (n == "temb.hidden" || n == "temb.out")
      layer.channels = 4 * w(0);  // UNet2DModel's time_embed_dim
    else if (n.rfind("mid.", 0) == 0)
      layer.channels = w(S::level_count - 1);
    else  // down.<l>.* and up.<l>.*
      layer.channels = w(std::stoi(n.substr(n.find('.') + 1)));
  }
  return t;
}

/// The config of a UNet2DModel equal to `net`; ConfigError naming the layer or setting that
/// diffusers cannot express (a pruned, non-uniform width; a time embedding not 4x the base
/// width; a max_period other than 10000; head counts that no single head size gives).
template <class Net>
DiffusersUNetConfig diffusers_config_of(const Net& net) {
  check_diffusers_expressible<Net>();
  using S = typename Net::spec;
  const unet::WidthTable widths = net.widths();
  const unet::UNetConfig& u = net.config();
  DiffusersUNetConfig c;
  c.block_out_channels.clear();
  for (int l = 0; l < S::level_count; ++l)
    c.block_out_channels.push_back(widths.at("down." + std::to_string(l) + ".res.0"));
  {
    const unet::WidthTable expected = widths_from_diffusers<Net>(c);
    for (std::size_t i = 0; i < expected.layers.size(); ++i) {
      const auto& e = expected.layers[i];
      const std::int64_t got = widths.at(e.layer);
      if (got != e.channels)
        throw ConfigError("diffusers export: layer " + e.layer + " has width " + std::to_string(got) + ", expected " +
                          std::to_string(e.channels) +
                          ": UNet2DModel has one width per level (block_out_channels), 4x level 0's for the time "
                          "embedding; a pruned model of non-uniform widths cannot be expressed");
    }
  }
  if (u.max_period != 10000.0)
    throw ConfigError("diffusers export: max_period " + std::to_string(u.max_period) +
                      " is not expressible; UNet2DModel's sinusoid uses 10000");
  c.sample_size = u.image_size;
  c.in_channels = S::image_channels;
  c.out_channels = S::output_channels;  // the prediction, then the variance interpolation v, as diffusers splits them
  c.freq_shift = u.time_shift;
  c.flip_sin_to_cos = false;  // progdiff's sinusoid is [sin | cos]
  c.layers_per_block = S::res_blocks;
  c.downsample_padding = u.downsample_padding;
  c.dropout = u.dropout;
  c.norm_num_groups = u.groups;
  c.norm_eps = u.eps;
  c.add_attention = true;
  c.down_block_types.clear();
  c.up_block_types.clear();
  for (int l = 0; l < S::level_count; ++l)
    c.down_block_types.push_back(unet::attends_at<S>(u.image_size >> l) ? "AttnDownBlock2D" : "DownBlock2D");
  for (int l = S::level_count - 1; l >= 0; --l)
    c.up_block_types.push_back(unet::attends_at<S>(u.image_size >> l) ? "AttnUpBlock2D" : "UpBlock2D");
  // One head count everywhere: null head size when it is 1, else the size every block shares.
  c.attention_head_dim = 0;
  if (u.heads != 1) {
    std::int64_t size = 0;
    for (int l = 0; l <= S::level_count; ++l) {
      const bool mid = l == S::level_count;
      if (!mid && !unet::attends_at<S>(u.image_size >> l)) continue;
      const std::int64_t w = c.block_out_channels[static_cast<std::size_t>(mid ? S::level_count - 1 : l)];
      if (size != 0 && w / u.heads != size)
        throw ConfigError("diffusers export: " + std::to_string(u.heads) +
                          " heads on attention blocks of different widths need different head sizes; "
                          "UNet2DModel has one attention_head_dim");
      size = w / u.heads;
    }
    c.attention_head_dim = size;
  }
  return c;
}

}  // namespace progdiff::interop

#pragma once
// The one description of a U-Net's topology: which layers a Spec has, in forward order, their
// names, where attention follows a ResBlock, which skips the decoder concatenates, each layer's
// spatial side and its default width multiplier. The encoder and decoder build their layers from
// it, the width tables take their names and default widths from it, and the pruner derives its
// channel groups from it, so a change of topology is made here once.
//
//   encoder: temb.sinusoid, temb.hidden, temb.out, conv_in,
//            per level l: down.<l>.res.<j> (+ down.<l>.attn.<j>), down.<l>.downsample (l < L - 1),
//            mid.res.0 (+ mid.attn), mid.res.1
//   decoder: per level from the coarsest: up.<l>.res.<j> for j <= res_blocks (+ up.<l>.attn.<j>;
//            DdpmppAttention: only j = res_blocks), each on [features, skip], up.<l>.upsample
//            (l > 0); then norm_out, conv_out
//
// With ResBlockResampling the Downsample and Upsample layers are resampling ResBlocks under
// the same names; the topology (skips, widths) is the same.
//
// conv_in, every encoder ResBlock and every Downsample push a skip (DDPM's hs list); decoder
// ResBlocks consume them from the last pushed.
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/unet/spec.hpp"

namespace progdiff::unet {

/// What a width-table layer is.
enum class LayerRole {
  TimeSinusoid,  // the timestep's sinusoid features (not a parameter layer: the input of temb.linear_1)
  TimeHidden,    // temb.linear_1's output
  TimeOut,       // temb.linear_2's output: the embedding every ResBlock reads
  ConvIn,
  EncoderRes,
  Downsample,
  MiddleRes,
  DecoderRes,
  Upsample,
};

/// One width-table layer and its place in the U-Net.
struct LayoutLayer {
  LayerRole role;
  std::string name;             // width-table name and parameter prefix, e.g. "down.1.res.0"
  std::string attention;        // name of the attention block after it ("down.1.attn.0"), or "" for none
  int level = -1;               // -1 for the time embedding, conv_in and the middle block
  int index = 0;                // the ResBlock's index within its level
  std::int64_t side = 0;        // spatial side of the layer's input (0 for the time embedding)
  std::int64_t multiplier = 0;  // default width = base * multiplier (the time embedding's hidden
                                // and output widths: base * time_multiplier)
  std::int64_t skip = -1;       // a decoder ResBlock: the index, in push order, of the skip it concatenates
};

namespace detail {

inline bool contains_resolution(const auto& resolutions, std::int64_t side) {
  for (int r : resolutions)
    if (r == side) return true;
  return false;
}

}  // namespace detail

/// Whether a level of side `side` is one of the Spec's attention resolutions.
template <class S>
bool attends_at(std::int64_t side) {
  return detail::contains_resolution(S::attention_resolutions, side);
}

/// The encoder's layers in forward order for images of side `image_size`. With image_size 0
/// (the structure without a size: names and multipliers only) no layer attends and sides are 0.
template <class S>
std::vector<LayoutLayer> encoder_layout(std::int64_t image_size) {
  const auto level_multiplier = [](int l) { return std::int64_t{S::multipliers[static_cast<std::size_t>(l)]}; };
  const auto side_of = [&](int l) { return image_size >> l; };
  std::vector<LayoutLayer> out{
      {LayerRole::TimeSinusoid, "temb.sinusoid", "", -1, 0, 0, 1},
      {LayerRole::TimeHidden, "temb.hidden", "", -1, 0, 0, S::time_multiplier},
      {LayerRole::TimeOut, "temb.out", "", -1, 0, 0, S::time_multiplier},
      {LayerRole::ConvIn, "conv_in", "", -1, 0, image_size, 1},
  };
  // The single-attention layout attends once: after the last ResBlock of the first attention level.
  bool single_attention_placed = false;
  for (int l = 0; l < S::level_count; ++l) {
    const std::string level = "down." + std::to_string(l);
    const bool attend_level = image_size > 0 && attends_at<S>(side_of(l));
    for (int j = 0; j < S::res_blocks; ++j) {
      bool attend = false;
      if (S::attention_every_block)
        attend = attend_level;
      else if (attend_level && !single_attention_placed && j + 1 == S::res_blocks)
        attend = single_attention_placed = true;
      out.push_back({LayerRole::EncoderRes, level + ".res." + std::to_string(j),
                     attend ? level + ".attn." + std::to_string(j) : "", l, j, side_of(l), level_multiplier(l)});
    }
    if (l + 1 < S::level_count)
      out.push_back({LayerRole::Downsample, level + ".downsample", "", l, 0, side_of(l), level_multiplier(l)});
  }
  const int coarsest = S::level_count - 1;
  const bool mid_attends = S::attention_every_block && image_size > 0;
  out.push_back({LayerRole::MiddleRes, "mid.res.0", mid_attends ? "mid.attn" : "", -1, 0, side_of(coarsest),
                 level_multiplier(coarsest)});
  out.push_back({LayerRole::MiddleRes, "mid.res.1", "", -1, 1, side_of(coarsest), level_multiplier(coarsest)});
  return out;
}

/// Whether an encoder layer pushes a skip for the decoder.
inline bool pushes_skip(const LayoutLayer& layer) {
  return layer.role == LayerRole::ConvIn || layer.role == LayerRole::EncoderRes || layer.role == LayerRole::Downsample;
}

/// The number of skips the encoder pushes: conv_in, every ResBlock and every Downsample.
template <class S>
constexpr std::int64_t skip_count() {
  return std::int64_t{S::level_count} * (S::res_blocks + 1);
}

/// A decoder's layers in forward order (coarsest level first) for images of side `image_size`
/// (0: names and multipliers only, as for encoder_layout). Each ResBlock names the skip it takes.
template <class S>
std::vector<LayoutLayer> decoder_layout(std::int64_t image_size) {
  std::vector<LayoutLayer> out;
  std::int64_t skip = skip_count<S>();
  for (int l = S::level_count - 1; l >= 0; --l) {
    const std::string level = "up." + std::to_string(l);
    const std::int64_t side = image_size >> l;
    const std::int64_t multiplier = S::multipliers[static_cast<std::size_t>(l)];
    const bool attend_level = S::attention_every_block && image_size > 0 && attends_at<S>(side);
    for (int j = 0; j <= S::res_blocks; ++j) {
      // DdpmppAttention: once per level, after the last ResBlock.
      const bool attend = attend_level && (!S::decoder_attention_once || j == S::res_blocks);
      LayoutLayer layer{LayerRole::DecoderRes,
                        level + ".res." + std::to_string(j),
                        attend ? level + ".attn." + std::to_string(j) : "",
                        l,
                        j,
                        side,
                        multiplier};
      layer.skip = --skip;
      out.push_back(std::move(layer));
    }
    if (l > 0) out.push_back({LayerRole::Upsample, level + ".upsample", "", l, 0, side, multiplier});
  }
  return out;
}

/// The names of a layout's layers (a width table's rows), in order.
inline std::vector<std::string> layer_names(const std::vector<LayoutLayer>& layout) {
  std::vector<std::string> names;
  for (const auto& layer : layout) names.push_back(layer.name);
  return names;
}

}  // namespace progdiff::unet

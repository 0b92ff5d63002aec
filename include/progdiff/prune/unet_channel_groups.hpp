#pragma once
// The channel dependency groups of a U-Net, derived from its type (Spec: levels, ResBlocks,
// attention placement) and its run-time widths, without tracing a forward pass:
//
//   * every width-table layer is one channel axis: its producer's output rows, the GroupNorm,
//     convolution and time projection of a ResBlock's inner width (the layers build the inner
//     width equal to the output width, so the two are one axis), and the input columns of every
//     consumer;
//   * a ResBlock whose input and output widths are equal adds its input to its output: both axes
//     are one group; with a 1x1 skip convolution they stay separate (ProjectionConstraint);
//   * an attention block's residual, its GroupNorm, its q, k and v rows (offsets 0, C, 2C of the
//     qkv convolution) and its projection are the axis of the block's ResBlock; channels come off
//     each head in equal numbers, so the head count is kept;
//   * the encoder's skips are concatenated into decoder ResBlocks after the decoder's features:
//     the skip's group owns the slice [c_h, c_h + c_skip) of that block's input;
//   * GroupNorm keeps its group count (the U-Net has one per encoder and one per decoder); a
//     group's width stays a multiple of it and each GroupNorm group loses the same number of
//     channels;
//   * a resampling ResBlock (ResBlockResampling) always has a 1x1 skip convolution, so its input
//     and output axes stay separate; with ScaleShiftTime temb_proj's scale and shift rows
//     (offsets 0 and C) are both on the block's output axis;
//   * in a MultiDecoderUNet, the encoder's skips, middle output and time embedding are consumed
//     by every decoder; each decoder's own axes are separate groups (named decoder.<k>.<layer>).
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "progdiff/prune/channel_groups.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff::prune {

namespace detail {

// Collects axes, slices, segment counts, ties and FLOPs terms while walking a U-Net's
// structure, then merges tied axes into groups.
class GroupBuilder {
 public:
  std::size_t axis(const std::string& layer, std::int64_t width, bool prunable = true) {
    axes_.push_back(Axis{layer, width, 1, prunable, false, {}});
    parent_.push_back(axes_.size() - 1);
    return axes_.size() - 1;
  }
  std::int64_t width(std::size_t a) const { return axes_[a].width; }
  void slice(std::size_t a, const std::string& parameter, int axis, std::int64_t offset, SliceRole role) {
    axes_[a].slices.push_back(ChannelSlice{parameter, axis, offset, role});
  }
  // Output rows (and bias) of a conv or linear layer called `layer`.
  void produced_by(std::size_t a, const std::string& layer) {
    slice(a, layer + ".weight", 0, 0, SliceRole::channel);
    slice(a, layer + ".bias", 0, 0, SliceRole::channel);
  }
  void normalized_by(std::size_t a, const std::string& norm, std::int64_t offset, std::int64_t groups) {
    slice(a, norm + ".gamma", 0, offset, SliceRole::channel);
    slice(a, norm + ".beta", 0, offset, SliceRole::channel);
    segment(a, groups);
  }
  void segment(std::size_t a, std::int64_t count) { axes_[a].segments = std::lcm(axes_[a].segments, count); }
  void tie(std::size_t a, std::size_t b) { parent_[find(a)] = find(b); }
  void term(double coefficient, std::vector<std::size_t> a, std::int64_t a_constant, std::vector<std::size_t> b,
            std::int64_t b_constant) {
    raw_terms_.push_back({coefficient, std::move(a), a_constant, std::move(b), b_constant, term_weight});
  }
  void projection(const std::string& block, std::vector<std::size_t> inputs, std::size_t output) {
    raw_projections_.push_back({block, std::move(inputs), output});
  }
  void mark_attention(std::size_t a) { axes_[a].attention = true; }

  double term_weight = 1.0;

  ChannelGroups finish() {
    ChannelGroups out;
    std::vector<std::size_t> group_of_root(axes_.size(), axes_.size());
    std::vector<std::size_t> group_of_axis(axes_.size());
    for (std::size_t a = 0; a < axes_.size(); ++a) {
      const std::size_t r = find(a);
      if (group_of_root[r] == axes_.size()) {
        group_of_root[r] = out.groups.size();
        ChannelGroup g;
        g.name = axes_[a].layer;
        g.width = axes_[a].width;
        out.groups.push_back(g);
      }
      const std::size_t gi = group_of_axis[a] = group_of_root[r];
      ChannelGroup& g = out.groups[gi];
      if (g.width != axes_[a].width)
        throw ConfigError("channel groups: layers '" + g.name + "' and '" + axes_[a].layer +
                          "' are tied by a residual addition but have widths " + std::to_string(g.width) + " and " +
                          std::to_string(axes_[a].width));
      g.layers.push_back(axes_[a].layer);
      g.segments = std::lcm(g.segments, axes_[a].segments);
      g.prunable = g.prunable && axes_[a].prunable;
      g.attention = g.attention || axes_[a].attention;
      g.slices.insert(g.slices.end(), axes_[a].slices.begin(), axes_[a].slices.end());
    }
    for (auto& g : out.groups) {
      if (!g.prunable) g.segments = 1;
      if (g.width % g.segments != 0)
        throw ConfigError("channel groups: group '" + g.name + "' has width " + std::to_string(g.width) +
                          ", not a multiple of " + std::to_string(g.segments) +
                          " (the GroupNorm group counts and attention heads on it)");
    }
    auto map = [&](const std::vector<std::size_t>& v) {
      std::vector<std::size_t> m;
      for (std::size_t a : v) m.push_back(group_of_axis[a]);
      return m;
    };
    for (const auto& t : raw_terms_)
      out.flops_terms.push_back({t.coefficient, map(t.a), t.a_constant, map(t.b), t.b_constant, t.weight});
    for (const auto& p : raw_projections_) out.projections.push_back({p.block, map(p.inputs), group_of_axis[p.output]});
    return out;
  }

 private:
  struct Axis {
    std::string layer;
    std::int64_t width;
    std::int64_t segments;
    bool prunable;
    bool attention;
    std::vector<ChannelSlice> slices;
  };
  std::size_t find(std::size_t a) {
    while (parent_[a] != a) a = parent_[a] = parent_[parent_[a]];
    return a;
  }
  std::vector<Axis> axes_;
  std::vector<std::size_t> parent_;
  std::vector<FlopsTerm> raw_terms_;
  std::vector<ProjectionConstraint> raw_projections_;
};

// One input part of a ResBlock: an axis at an offset of the block's input channels.
struct InputPart {
  std::size_t axis;
  std::int64_t offset;
};

// A ResBlock (prefix `res`) from `inputs` to `out`, optionally followed by an attention block
// (prefix `attn`, empty for none), its convolutions at spatial size side x side. A resampling
// block (`resamples`: its convolutions run at the resampled side) always has a skip convolution;
// with `scale_shift` temb_proj's rows [C, 2C) (the shift) are on the output axis too.
inline void res_block(GroupBuilder& b, const std::string& res, const std::vector<InputPart>& inputs, std::size_t out,
                      std::size_t temb, std::int64_t groups, const std::string& attn, std::int64_t heads,
                      std::int64_t side, bool resamples = false, bool scale_shift = false) {
  std::int64_t in_width = 0;
  std::vector<std::size_t> in_axes;
  for (const auto& p : inputs) {
    in_width += b.width(p.axis);
    in_axes.push_back(p.axis);
  }
  const bool identity = in_width == b.width(out) && !resamples;
  if (identity && inputs.size() != 1)
    throw ConfigError("channel groups: block '" + res +
                      "' adds its concatenated input to its output (equal widths); pruning such a block is not "
                      "supported");
  const double hw = static_cast<double>(side * side);
  for (const auto& p : inputs) {
    b.normalized_by(p.axis, res + ".norm1", p.offset, groups);
    b.slice(p.axis, res + ".conv1.weight", 1, p.offset, SliceRole::consumer);
    if (!identity) b.slice(p.axis, res + ".skip.weight", 1, p.offset, SliceRole::consumer);
  }
  b.produced_by(out, res + ".conv1");
  b.produced_by(out, res + ".temb_proj");
  if (scale_shift) {
    b.slice(out, res + ".temb_proj.weight", 0, b.width(out), SliceRole::channel);
    b.slice(out, res + ".temb_proj.bias", 0, b.width(out), SliceRole::channel);
    b.term(2, {temb}, 0, {out}, 0);
  }
  b.slice(temb, res + ".temb_proj.weight", 1, 0, SliceRole::consumer);
  b.normalized_by(out, res + ".norm2", 0, groups);
  b.slice(out, res + ".conv2.weight", 1, 0, SliceRole::consumer);
  b.produced_by(out, res + ".conv2");
  b.term(2 * 9 * hw, in_axes, 0, {out}, 0);  // conv1
  b.term(2, {temb}, 0, {out}, 0);            // temb_proj
  b.term(2 * 9 * hw, {out}, 0, {out}, 0);    // conv2
  if (identity) {
    b.tie(inputs[0].axis, out);
  } else {
    b.produced_by(out, res + ".skip");
    b.term(2 * hw, in_axes, 0, {out}, 0);
    if (!resamples) b.projection(res, in_axes, out);  // a resampling block keeps its skip at any widths
  }
  if (!attn.empty()) {
    const std::int64_t c = b.width(out);
    b.normalized_by(out, attn + ".norm", 0, groups);
    b.slice(out, attn + ".qkv.weight", 1, 0, SliceRole::consumer);
    for (std::int64_t k = 0; k < 3; ++k) {
      const SliceRole role = k < 2 ? SliceRole::score : SliceRole::channel;
      b.slice(out, attn + ".qkv.weight", 0, k * c, role);
      b.slice(out, attn + ".qkv.bias", 0, k * c, role);
    }
    b.slice(out, attn + ".proj.weight", 1, 0, SliceRole::consumer);
    b.produced_by(out, attn + ".proj");
    b.segment(out, heads);
    b.mark_attention(out);
    b.term(2 * 4 * hw, {out}, 0, {out}, 0);  // qkv (3C x C) and proj (C x C)
    b.term(4 * hw * hw, {out}, 0, {}, 1);    // q^T k and v A^T
  }
}

struct EncoderAxes {
  std::size_t temb;
  std::size_t out;
  std::vector<std::size_t> skips;
};

template <class S>
EncoderAxes encoder_groups(GroupBuilder& b, const unet::WidthTable& w, const unet::UNetConfig& c,
                           const std::string& pre) {
  using nn::scoped;
  using unet::LayerRole;
  const std::int64_t side = unet::checked_image_size<S>(c);
  const std::int64_t g = c.groups;
  EncoderAxes e;
  std::size_t sin = 0, hid = 0, cur = 0;
  for (const unet::LayoutLayer& layer : unet::encoder_layout<S>(side)) {
    const std::string attention = layer.attention.empty() ? "" : scoped(pre, layer.attention);
    switch (layer.role) {
      case LayerRole::TimeSinusoid:
        sin = b.axis(layer.name, w.at(layer.name), false);
        b.slice(sin, scoped(pre, "temb.linear_1.weight"), 1, 0, SliceRole::consumer);
        break;
      case LayerRole::TimeHidden:
        hid = b.axis(layer.name, w.at(layer.name));
        b.produced_by(hid, scoped(pre, "temb.linear_1"));
        b.slice(hid, scoped(pre, "temb.linear_2.weight"), 1, 0, SliceRole::consumer);
        b.term(2, {sin}, 0, {hid}, 0);
        break;
      case LayerRole::TimeOut:
        e.temb = b.axis(layer.name, w.at(layer.name));
        b.produced_by(e.temb, scoped(pre, "temb.linear_2"));
        b.term(2, {hid}, 0, {e.temb}, 0);
        break;
      case LayerRole::ConvIn:
        cur = b.axis(layer.name, w.at(layer.name));
        b.produced_by(cur, scoped(pre, "conv_in"));
        b.term(2 * 9 * double(layer.side * layer.side), {}, S::image_channels, {cur}, 0);
        break;
      case LayerRole::EncoderRes:
      case LayerRole::MiddleRes: {
        const std::size_t out = b.axis(layer.name, w.at(layer.name));
        res_block(b, scoped(pre, layer.name), {{cur, 0}}, out, e.temb, g, attention, c.heads, layer.side, false,
                  S::scale_shift);
        cur = out;
        break;
      }
      case LayerRole::Downsample: {
        const std::size_t out = b.axis(layer.name, w.at(layer.name));
        if constexpr (S::resblock_resampling) {
          res_block(b, scoped(pre, layer.name), {{cur, 0}}, out, e.temb, g, "", c.heads, layer.side / 2, true,
                    S::scale_shift);
          cur = out;
          break;
        }
        b.slice(cur, scoped(pre, layer.name + ".conv.weight"), 1, 0, SliceRole::consumer);
        b.produced_by(out, scoped(pre, layer.name + ".conv"));
        const double so = static_cast<double>((layer.side + 1) / 2);
        b.term(2 * 9 * so * so, {cur}, 0, {out}, 0);
        cur = out;
        break;
      }
      default:
        throw ConfigError("channel groups: layer '" + layer.name + "' is not an encoder layer");
    }
    if (unet::pushes_skip(layer)) e.skips.push_back(cur);
  }
  e.out = cur;
  return e;
}

// `layer_prefix` names the decoder's layers in group names, `pre` its parameters.
template <class S>
void decoder_groups(GroupBuilder& b, const unet::WidthTable& w, std::int64_t groups, const unet::UNetConfig& c,
                    const EncoderAxes& e, const std::string& layer_prefix, const std::string& pre) {
  using nn::scoped;
  const std::int64_t side = unet::checked_image_size<S>(c);
  std::size_t cur = e.out;
  for (const unet::LayoutLayer& layer : unet::decoder_layout<S>(side)) {
    const std::size_t out = b.axis(layer_prefix + layer.name, w.at(layer.name));
    if (layer.role == unet::LayerRole::DecoderRes) {
      const std::size_t sk = e.skips[static_cast<std::size_t>(layer.skip)];
      const std::string attention = layer.attention.empty() ? "" : scoped(pre, layer.attention);
      res_block(b, scoped(pre, layer.name), {{cur, 0}, {sk, b.width(cur)}}, out, e.temb, groups, attention, c.heads,
                layer.side, false, S::scale_shift);
    } else if constexpr (S::resblock_resampling) {  // a ResBlock upsampling to twice the side
      res_block(b, scoped(pre, layer.name), {{cur, 0}}, out, e.temb, groups, "", c.heads, 2 * layer.side, true,
                S::scale_shift);
    } else {  // Upsample: nearest x2, then a 3x3 convolution at twice the side
      b.slice(cur, scoped(pre, layer.name + ".conv.weight"), 1, 0, SliceRole::consumer);
      b.produced_by(out, scoped(pre, layer.name + ".conv"));
      b.term(2 * 9 * double(4 * layer.side * layer.side), {cur}, 0, {out}, 0);
    }
    cur = out;
  }
  b.normalized_by(cur, scoped(pre, "norm_out"), 0, groups);
  b.slice(cur, scoped(pre, "conv_out.weight"), 1, 0, SliceRole::consumer);
  // conv_out writes every output channel: C, or 2C with a learned variance (the prediction and v).
  b.term(2 * 9 * double(side * side), {cur}, 0, {}, S::output_channels);
}

}  // namespace detail

/// The channel groups of a UNet (encoder groups, then the decoder's), named after width-table
/// layers; its FLOPs terms give UNet::flops of one sample.
template <class... Options>
ChannelGroups channel_groups(const unet::UNet<Options...>& net) {
  using S = typename unet::UNet<Options...>::spec;
  const unet::WidthTable w = net.widths();
  const std::size_t n = unet::encoder_layers<S>().size();
  unet::WidthTable enc, dec;
  enc.layers.assign(w.layers.begin(), w.layers.begin() + static_cast<std::ptrdiff_t>(n));
  dec.layers.assign(w.layers.begin() + static_cast<std::ptrdiff_t>(n), w.layers.end());
  detail::GroupBuilder b;
  const auto e = detail::encoder_groups<S>(b, enc, net.config(), "");
  detail::decoder_groups<S>(b, dec, net.config().groups, net.config(), e, "", "");
  return b.finish();
}

/// The channel groups of a MultiDecoderUNet: the shared encoder's groups (plain layer names)
/// feed every decoder; decoder k's groups are named decoder.<k>.<layer>. Its FLOPs terms give
/// the cost of one sample averaged over the K intervals (encoder + mean of the decoders).
template <class... Options>
ChannelGroups channel_groups(const unet::MultiDecoderUNet<Options...>& net) {
  using S = typename unet::MultiDecoderUNet<Options...>::spec;
  const unet::MultiDecoderWidths w = net.widths();
  detail::GroupBuilder b;
  const auto e = detail::encoder_groups<S>(b, w.encoder, net.config(), "encoder");
  b.term_weight = 1.0 / static_cast<double>(net.interval_count());
  for (std::size_t k = 0; k < w.decoders.size(); ++k) {
    const std::string pre = "decoder." + std::to_string(k);
    detail::decoder_groups<S>(b, w.decoders[k], w.decoder_groups[k], net.config(), e, pre + ".", pre);
  }
  return b.finish();
}

}  // namespace progdiff::prune

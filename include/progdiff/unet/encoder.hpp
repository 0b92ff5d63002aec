#pragma once
// The encoder half of a DDPM / DDPM++ U-Net: time embedding, conv_in, the downsampling levels and the
// middle block. It pushes a skip after conv_in, after every ResBlock (+ attention) and after
// every Downsample, as DDPM's hs list; a decoder consumes them in reverse.
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/nn/attention_block.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/downsample.hpp"
#include "progdiff/nn/res_block.hpp"
#include "progdiff/nn/timestep_embedding.hpp"
#include "progdiff/nn/upsample.hpp"
#include "progdiff/unet/channel_ops.hpp"
#include "progdiff/unet/config.hpp"
#include "progdiff/unet/layout.hpp"
#include "progdiff/unet/variance_scaling_init.hpp"

namespace progdiff::unet {

/// What an encoder hands a decoder: the middle block's output, the skips in push order and
/// the time embedding, each [N, ...].
template <class T, class B>
struct EncoderOutput {
  Tensor<T, B> h;
  std::vector<Tensor<T, B>> skips;
  Tensor<T, B> temb;
};

/// The gradients a decoder returns for an EncoderOutput, shaped like it.
template <class T, class B>
using EncoderGrads = EncoderOutput<T, B>;

/// Shapes of an encoder's outputs for an input shape, and its FLOPs.
struct EncoderShapes {
  Shape h;
  std::vector<Shape> skips;
  Shape temb;
  std::int64_t flops = 0;
};

/// A ResBlock followed, where the layout asks, by self-attention; named as in the layout.
template <class T, class B>
struct AttendedResBlock {
  nn::ResBlock<T, B> res;
  bool attend = false;
  nn::AttentionBlock<T, B> attn;
  std::string name, attention_name;  // LayoutLayer::name and ::attention

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    res.visit_parameters(f, nn::scoped(prefix, name));
    if (attend) attn.visit_parameters(f, nn::scoped(prefix, attention_name));
  }
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    res.visit_random_state(f, nn::scoped(prefix, name));
  }
};

/// A ResBlock of the Spec's style (skip rescaling, scale-shift time conditioning, resampling).
template <class S>
nn::ResBlockConfig res_block_config(std::int64_t in, std::int64_t out, std::int64_t temb_width, std::int64_t groups,
                                    const UNetConfig& config, nn::Resample resample = nn::Resample::None) {
  return nn::ResBlockConfig{in, out,      temb_width,      groups,        config.eps, config.dropout,
                            0,  resample, S::skip_rescale, S::scale_shift};
}

/// The Downsample (Upsample) layer of a Spec: DDPM's convolution, or with ResBlockResampling a
/// resampling ResBlock that also reads the time embedding.
template <class S>
using DownsampleLayer =
    std::conditional_t<S::resblock_resampling, nn::ResBlock<typename S::value_type, typename S::backend_type>,
                       nn::Downsample<typename S::value_type, typename S::backend_type>>;
template <class S>
using UpsampleLayer =
    std::conditional_t<S::resblock_resampling, nn::ResBlock<typename S::value_type, typename S::backend_type>,
                       nn::Upsample<typename S::value_type, typename S::backend_type>>;

/// The ResBlock of `layer` from `in` channels to the table's width (+ its attention), checking
/// that the GroupNorm groups divide the width.
template <class S>
AttendedResBlock<typename S::value_type, typename S::backend_type> make_attended_block(
    const LayoutLayer& layer, std::int64_t in, const WidthTable& widths, std::int64_t temb_width, std::int64_t groups,
    const UNetConfig& config, const std::string& what) {
  using T = typename S::value_type;
  using B = typename S::backend_type;
  const std::int64_t out = widths.at(layer.name);
  expect_divisible(layer.name, out, groups, what);
  AttendedResBlock<T, B> block;
  block.name = layer.name;
  block.attention_name = layer.attention;
  block.res = nn::ResBlock<T, B>(res_block_config<S>(in, out, temb_width, groups, config));
  block.attend = !layer.attention.empty();
  if (block.attend)
    block.attn =
        nn::AttentionBlock<T, B>(nn::AttentionBlockConfig{out, config.heads, groups, config.eps, S::skip_rescale});
  return block;
}

template <class S>
class Encoder {
 public:
  using value_type = typename S::value_type;
  using backend_type = typename S::backend_type;
  using T = value_type;
  using B = backend_type;

  Encoder() = default;
  Encoder(const WidthTable& widths, const UNetConfig& config) : widths_(widths), config_(config) {
    const std::string what = "UNet encoder";
    expect_layers(widths, encoder_layers<S>(), what);
    const std::int64_t g = config.groups;
    temb_ = nn::TimestepEmbedding<T, B>(nn::TimestepEmbeddingConfig{widths.at("temb.sinusoid"),
                                                                    widths.at("temb.hidden"), widths.at("temb.out"),
                                                                    config.max_period, config.time_shift});
    const std::int64_t e = widths.at("temb.out");
    std::int64_t cur = 0;
    levels_.resize(S::level_count);
    for (const LayoutLayer& layer : encoder_layout<S>(checked_image_size<S>(config))) {
      switch (layer.role) {
        case LayerRole::ConvIn:
          cur = widths.at(layer.name);
          expect_divisible(layer.name, cur, g, what);
          conv_in_ = nn::Conv2d<T, B>(nn::Conv2dConfig{S::image_channels, cur, 3, 1, 1, true});
          break;
        case LayerRole::EncoderRes:
          levels_[static_cast<std::size_t>(layer.level)].blocks.push_back(
              make_attended_block<S>(layer, cur, widths, e, g, config, what));
          cur = widths.at(layer.name);
          break;
        case LayerRole::Downsample: {
          Level& level = levels_[static_cast<std::size_t>(layer.level)];
          const std::int64_t out = widths.at(layer.name);
          expect_divisible(layer.name, out, g, what);
          if constexpr (S::resblock_resampling)
            level.down = nn::ResBlock<T, B>(res_block_config<S>(cur, out, e, g, config, nn::Resample::Down));
          else
            level.down = nn::Downsample<T, B>(nn::DownsampleConfig{cur, out, config.downsample_padding});
          level.downsamples = true;
          level.down_name = layer.name;
          cur = out;
          break;
        }
        case LayerRole::MiddleRes:
          (layer.index == 0 ? mid_ : mid_res1_) = make_attended_block<S>(layer, cur, widths, e, g, config, what);
          cur = widths.at(layer.name);
          break;
        default:  // the time embedding, built above
          break;
      }
      if (pushes_skip(layer)) skip_widths_.push_back(cur);
    }
  }

  /// PyTorch's default initialization of every layer, in forward order (then, with
  /// VarianceScalingInit, DDPM++'s, drawn after it from the same generator).
  void initialize(Generator& gen) {
    temb_.initialize(gen);
    conv_in_.initialize(gen);
    for (auto& level : levels_) {
      for (auto& b : level.blocks) {
        b.res.initialize(gen);
        if (b.attend) b.attn.initialize(gen);
      }
      if (level.has_down()) level.down.initialize(gen);
    }
    mid_.res.initialize(gen);
    if (mid_.attend) mid_.attn.initialize(gen);
    mid_res1_.res.initialize(gen);
    if constexpr (S::variance_scaling_init) variance_scaling_init(*this, gen);
  }

  void set_training(bool training) {
    for (auto& level : levels_) {
      for (auto& b : level.blocks) b.res.set_training(training);
      if constexpr (S::resblock_resampling)
        if (level.has_down()) level.down.set_training(training);
    }
    mid_.res.set_training(training);
    mid_res1_.res.set_training(training);
  }

  const WidthTable& widths() const { return widths_; }
  const UNetConfig& config() const { return config_; }
  /// Channels of each skip, in push order.
  const std::vector<std::int64_t>& skip_widths() const { return skip_widths_; }
  std::int64_t output_width() const { return widths_.at("mid.res.1"); }
  std::int64_t temb_width() const { return widths_.at("temb.out"); }

  /// The image shape this encoder takes for a batch of n.
  Shape input_shape(std::int64_t n) const {
    return Shape{n, S::image_channels, config_.image_size, config_.image_size};
  }

  /// x [N, C, S, S], t [N] -> middle output, skips and embedding.
  EncoderOutput<T, B> forward(const Tensor<T, B>& x, const Tensor<T, B>& t) {
    expect_nchw(x.shape(), "UNet input");
    expect_shape(x.shape(), input_shape(x.dim(0)), "UNet input image");
    expect_shape(t.shape(), Shape{x.dim(0)}, "UNet timesteps");
    EncoderOutput<T, B> out;
    out.temb = temb_.forward(t);
    Tensor<T, B> h = conv_in_.forward(x);
    out.skips.push_back(h);
    for (auto& level : levels_) {
      for (auto& b : level.blocks) {
        h = b.res.forward(h, out.temb);
        if (b.attend) h = b.attn.forward(h);
        out.skips.push_back(h);
      }
      if (level.has_down()) {
        if constexpr (S::resblock_resampling)
          h = level.down.forward(h, out.temb);
        else
          h = level.down.forward(h);
        out.skips.push_back(h);
      }
    }
    h = mid_.res.forward(h, out.temb);
    if (mid_.attend) h = mid_.attn.forward(h);
    out.h = mid_res1_.res.forward(h, out.temb);
    batch_ = x.dim(0);
    return out;
  }

  /// Gradients of the middle output, of every skip and of the embedding -> dx. Accumulates
  /// every parameter gradient.
  Tensor<T, B> backward(const EncoderGrads<T, B>& g) {
    require(batch_ >= 0, "UNet encoder backward called without a preceding forward");
    require(g.skips.size() == skip_widths_.size(), "UNet encoder backward: got " + std::to_string(g.skips.size()) +
                                                       " skip gradients, expected " +
                                                       std::to_string(skip_widths_.size()));
    Tensor<T, B> dtemb = g.temb.clone();
    auto add_temb = [&](const Tensor<T, B>& d) { accumulate(dtemb, d, "UNet encoder dtemb"); };
    auto r1 = mid_res1_.res.backward(g.h);
    add_temb(r1.dtemb);
    Tensor<T, B> dh = r1.dx;
    if (mid_.attend) dh = mid_.attn.backward(dh);
    auto r0 = mid_.res.backward(dh);
    add_temb(r0.dtemb);
    dh = r0.dx;
    std::size_t skip = g.skips.size();
    for (auto level = levels_.rbegin(); level != levels_.rend(); ++level) {
      if (level->has_down()) {
        accumulate(dh, g.skips[--skip], "UNet encoder skip gradient");
        if constexpr (S::resblock_resampling) {
          auto r = level->down.backward(dh);
          add_temb(r.dtemb);
          dh = r.dx;
        } else {
          dh = level->down.backward(dh);
        }
      }
      for (auto b = level->blocks.rbegin(); b != level->blocks.rend(); ++b) {
        accumulate(dh, g.skips[--skip], "UNet encoder skip gradient");
        if (b->attend) dh = b->attn.backward(dh);
        auto r = b->res.backward(dh);
        add_temb(r.dtemb);
        dh = r.dx;
      }
    }
    accumulate(dh, g.skips[--skip], "UNet encoder skip gradient");
    Tensor<T, B> dx = conv_in_.backward(dh);
    temb_.backward(dtemb);
    batch_ = -1;
    return dx;
  }

  /// Output shapes and FLOPs (multiply-add = 2) for an input of shape `in`.
  EncoderShapes shapes(const Shape& in) const {
    expect_nchw(in, "UNet input");
    expect_shape(in, input_shape(in[0]), "UNet input image");
    EncoderShapes s;
    s.temb = temb_.output_shape(Shape{in[0]});
    s.flops = temb_.flops(Shape{in[0]}) + conv_in_.flops(in);
    Shape h = conv_in_.output_shape(in);
    s.skips.push_back(h);
    for (const auto& level : levels_) {
      for (const auto& b : level.blocks) {
        s.flops += b.res.flops(h);
        h = b.res.output_shape(h);
        if (b.attend) s.flops += b.attn.flops(h);
        s.skips.push_back(h);
      }
      if (level.has_down()) {
        s.flops += level.down.flops(h);
        h = level.down.output_shape(h);
        s.skips.push_back(h);
      }
    }
    s.flops += mid_.res.flops(h);
    h = mid_.res.output_shape(h);
    if (mid_.attend) s.flops += mid_.attn.flops(h);
    s.flops += mid_res1_.res.flops(h);
    s.h = mid_res1_.res.output_shape(h);
    return s;
  }

  std::int64_t flops(const Shape& in) const { return shapes(in).flops; }

  std::int64_t parameter_count() const {
    std::int64_t p = temb_.parameter_count() + conv_in_.parameter_count();
    for (const auto& level : levels_) {
      for (const auto& b : level.blocks) p += b.res.parameter_count() + (b.attend ? b.attn.parameter_count() : 0);
      if (level.has_down()) p += level.down.parameter_count();
    }
    p += mid_.res.parameter_count() + (mid_.attend ? mid_.attn.parameter_count() : 0);
    return p + mid_res1_.res.parameter_count();
  }

  /// Names: temb.*, conv_in.*, down.<l>.res.<j>.*, down.<l>.attn.<j>.*, down.<l>.downsample.*,
  /// mid.res.0.*, mid.attn.*, mid.res.1.* (unet/layout.hpp).
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    temb_.visit_parameters(f, nn::scoped(prefix, "temb"));
    conv_in_.visit_parameters(f, nn::scoped(prefix, "conv_in"));
    for (auto& level : levels_) {
      for (auto& block : level.blocks) block.visit_parameters(f, prefix);
      if (level.has_down()) level.down.visit_parameters(f, nn::scoped(prefix, level.down_name));
    }
    mid_.visit_parameters(f, prefix);
    mid_res1_.visit_parameters(f, prefix);
  }
  /// Every ResBlock's dropout, named as its parameters: down.<l>.res.<j>.dropout, mid.res.<i>.dropout
  /// (and down.<l>.downsample.dropout with ResBlockResampling).
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    for (auto& level : levels_) {
      for (auto& block : level.blocks) block.visit_random_state(f, prefix);
      if constexpr (S::resblock_resampling)
        if (level.has_down()) level.down.visit_random_state(f, nn::scoped(prefix, level.down_name));
    }
    mid_.visit_random_state(f, prefix);
    mid_res1_.visit_random_state(f, prefix);
  }

 private:
  struct Level {
    std::vector<AttendedResBlock<T, B>> blocks;
    bool downsamples = false;  // every level but the coarsest
    DownsampleLayer<S> down;
    std::string down_name;
    bool has_down() const { return downsamples; }
  };

  WidthTable widths_;
  UNetConfig config_;
  nn::TimestepEmbedding<T, B> temb_;
  nn::Conv2d<T, B> conv_in_;
  std::vector<Level> levels_;
  AttendedResBlock<T, B> mid_;
  AttendedResBlock<T, B> mid_res1_;  // never attends
  std::vector<std::int64_t> skip_widths_;
  std::int64_t batch_ = -1;
};

}  // namespace progdiff::unet

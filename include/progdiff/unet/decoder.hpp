#pragma once
// The decoder half of a DDPM / DDPM++ U-Net: per level from the coarsest, res_blocks + 1 ResBlocks each
// taking the concatenation of the current features and the encoder's next skip (+ attention at
// the attention resolutions), Upsample between levels, then GroupNorm, SiLU and conv_out.
// Its widths and GroupNorm groups are its own, so several decoders of different widths can
// share one encoder (the multi-decoder U-Net of the multi-stage paper, Sec. 4.1).
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/silu.hpp"
#include "progdiff/nn/upsample.hpp"
#include "progdiff/unet/encoder.hpp"

namespace progdiff::unet {

template <class S>
class Decoder {
 public:
  using value_type = typename S::value_type;
  using backend_type = typename S::backend_type;
  using T = value_type;
  using B = backend_type;

  Decoder() = default;
  /// `skip_widths`: the encoder's skips in push order; `in_width`: channels of the encoder's
  /// middle output; `groups`: this decoder's GroupNorm groups.
  Decoder(const WidthTable& widths, const std::vector<std::int64_t>& skip_widths, std::int64_t in_width,
          std::int64_t temb_width, std::int64_t groups, const UNetConfig& config,
          const std::string& what = "UNet decoder")
      : widths_(widths), groups_(groups) {
    expect_layers(widths, decoder_layers<S>(), what);
    const std::size_t expected_skips = static_cast<std::size_t>(skip_count<S>());
    require(skip_widths.size() == expected_skips, what + ": got " + std::to_string(skip_widths.size()) +
                                                      " skip widths, expected " + std::to_string(expected_skips));
    std::int64_t cur = in_width;
    for (const LayoutLayer& layer : decoder_layout<S>(checked_image_size<S>(config))) {
      if (layer.role == LayerRole::DecoderRes) {
        if (levels_.empty() || levels_.back().level != layer.level) {
          levels_.emplace_back();
          levels_.back().level = layer.level;
        }
        const std::int64_t skip_width = skip_widths[static_cast<std::size_t>(layer.skip)];
        expect_divisible(layer.name + " input (" + std::to_string(cur) + " + skip " + std::to_string(skip_width) + ")",
                         cur + skip_width, groups, what);
        levels_.back().blocks.push_back(
            make_attended_block<S>(layer, cur + skip_width, widths, temb_width, groups, config, what));
        levels_.back().skip_widths.push_back(skip_width);
        cur = widths.at(layer.name);
      } else {  // LayerRole::Upsample
        Level& level = levels_.back();
        const std::int64_t out = widths.at(layer.name);
        if constexpr (S::resblock_resampling)
          level.up = nn::ResBlock<T, B>(res_block_config<S>(cur, out, temb_width, groups, config, nn::Resample::Up));
        else
          level.up = nn::Upsample<T, B>(nn::UpsampleConfig{cur, out});
        level.upsamples = true;
        level.up_name = layer.name;
        cur = out;
      }
    }
    expect_divisible("norm_out", cur, groups, what);
    norm_out_ = nn::GroupNorm<T, B>(nn::GroupNormConfig{groups, cur, config.eps});
    conv_out_ = nn::Conv2d<T, B>(nn::Conv2dConfig{cur, S::output_channels, 3, 1, 1, true});
  }

  void initialize(Generator& gen) {
    for (auto& level : levels_) {
      for (auto& b : level.blocks) {
        b.res.initialize(gen);
        if (b.attend) b.attn.initialize(gen);
      }
      if (level.upsamples) level.up.initialize(gen);
    }
    norm_out_.initialize(gen);
    conv_out_.initialize(gen);
    if constexpr (S::variance_scaling_init) variance_scaling_init(*this, gen);
  }

  void set_training(bool training) {
    for (auto& level : levels_) {
      for (auto& b : level.blocks) b.res.set_training(training);
      if constexpr (S::resblock_resampling)
        if (level.upsamples) level.up.set_training(training);
    }
  }

  const WidthTable& widths() const { return widths_; }
  std::int64_t groups() const { return groups_; }

  /// Encoder output (middle features, skips in push order, embedding) -> the prediction
  /// [N, output_channels, S, S] (C, or 2C with LearnedVariance).
  Tensor<T, B> forward(const Tensor<T, B>& h_in, const std::vector<Tensor<T, B>>& skips, const Tensor<T, B>& temb) {
    const std::size_t expected = static_cast<std::size_t>(skip_count<S>());
    if (skips.size() != expected)
      throw ShapeError("UNet decoder: got " + std::to_string(skips.size()) + " skips, expected " +
                       std::to_string(expected));
    std::size_t skip = skips.size();
    Tensor<T, B> h = h_in;
    for (auto& level : levels_) {
      for (auto& b : level.blocks) {
        h = b.res.forward(concat_channels(h, skips[--skip]), temb);
        if (b.attend) h = b.attn.forward(h);
      }
      if (level.upsamples) {
        if constexpr (S::resblock_resampling)
          h = level.up.forward(h, temb);
        else
          h = level.up.forward(h);
      }
    }
    skip_count_ = skips.size();
    return conv_out_.forward(norm_out_.forward_silu(h, silu_));
  }

  /// dy [N, output_channels, S, S] -> gradients of the middle features, of each skip and of the embedding.
  EncoderGrads<T, B> backward(const Tensor<T, B>& dy) {
    require(skip_count_ > 0, "UNet decoder backward called without a preceding forward");
    EncoderGrads<T, B> g;
    g.skips.resize(skip_count_);
    Tensor<T, B> dh = norm_out_.backward_silu(conv_out_.backward(dy), silu_);
    std::size_t skip = 0;  // level blocks consumed skips from the back: undo from the front
    const auto add_temb = [&](const Tensor<T, B>& d) {
      if (g.temb.empty())
        g.temb = d;
      else
        accumulate(g.temb, d, "UNet decoder dtemb");
    };
    for (auto level = levels_.rbegin(); level != levels_.rend(); ++level) {
      if (level->upsamples) {
        if constexpr (S::resblock_resampling) {
          auto r = level->up.backward(dh);
          add_temb(r.dtemb);
          dh = r.dx;
        } else {
          dh = level->up.backward(dh);
        }
      }
      for (std::size_t j = level->blocks.size(); j-- > 0;) {
        auto& b = level->blocks[j];
        if (b.attend) dh = b.attn.backward(dh);
        auto r = b.res.backward(dh);
        add_temb(r.dtemb);
        auto [dcur, dskip] = split_channels(r.dx, b.res.config().in_channels - level->skip_widths[j]);
        g.skips[skip++] = dskip;
        dh = dcur;
      }
    }
    g.h = dh;
    skip_count_ = 0;
    return g;
  }

  /// FLOPs (multiply-add = 2) for the encoder output shapes `in`.
  std::int64_t flops(const EncoderShapes& in) const {
    std::int64_t f = 0;
    std::size_t skip = in.skips.size();
    Shape h = in.h;
    for (const auto& level : levels_) {
      for (const auto& b : level.blocks) {
        const Shape s = in.skips[--skip];
        const Shape cat{h[0], h[1] + s[1], h[2], h[3]};
        f += b.res.flops(cat);
        h = b.res.output_shape(cat);
        if (b.attend) f += b.attn.flops(h);
      }
      if (level.upsamples) {
        f += level.up.flops(h);
        h = level.up.output_shape(h);
      }
    }
    return f + conv_out_.flops(h);
  }

  std::int64_t parameter_count() const {
    std::int64_t p = norm_out_.parameter_count() + conv_out_.parameter_count();
    for (const auto& level : levels_) {
      for (const auto& b : level.blocks) p += b.res.parameter_count() + (b.attend ? b.attn.parameter_count() : 0);
      if (level.upsamples) p += level.up.parameter_count();
    }
    return p;
  }

  /// Names: up.<l>.res.<j>.*, up.<l>.attn.<j>.*, up.<l>.upsample.*, norm_out.*, conv_out.* (unet/layout.hpp).
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    for (auto& level : levels_) {
      for (auto& block : level.blocks) block.visit_parameters(f, prefix);
      if (level.upsamples) level.up.visit_parameters(f, nn::scoped(prefix, level.up_name));
    }
    norm_out_.visit_parameters(f, nn::scoped(prefix, "norm_out"));
    conv_out_.visit_parameters(f, nn::scoped(prefix, "conv_out"));
  }
  /// Every ResBlock's dropout: up.<l>.res.<j>.dropout (and up.<l>.upsample.dropout with ResBlockResampling).
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    for (auto& level : levels_) {
      for (auto& block : level.blocks) block.visit_random_state(f, prefix);
      if constexpr (S::resblock_resampling)
        if (level.upsamples) level.up.visit_random_state(f, nn::scoped(prefix, level.up_name));
    }
  }

 private:
  struct Level {
    std::vector<AttendedResBlock<T, B>> blocks;
    std::vector<std::int64_t> skip_widths;  // channels of the skip each block concatenates
    int level = 0;
    bool upsamples = false;  // every level but the finest
    UpsampleLayer<S> up;
    std::string up_name;
  };

  WidthTable widths_;
  std::int64_t groups_ = 0;
  std::vector<Level> levels_;  // coarsest first
  nn::GroupNorm<T, B> norm_out_;
  nn::SiLU<T, B> silu_;
  nn::Conv2d<T, B> conv_out_;
  std::size_t skip_count_ = 0;
};

}  // namespace progdiff::unet

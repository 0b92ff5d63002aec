#pragma once
// UNet<Options...>: the DDPM noise-prediction U-Net (Ho et al. 2020, Appendix B), with the
// DDPM++ (Song et al. 2021) and IDDPM blocks as options (unet/options.hpp), structure by type,
// widths by value:
//
//   t [N] -> sinusoid(base) -> Linear -> SiLU -> Linear (time_multiplier * base) = temb
//   x [N, C, S, S] -> conv_in 3x3 -> per level: ResBlocks (+ attention) -> Downsample
//     -> middle: ResBlock, attention, ResBlock
//     -> per level from the coarsest: res_blocks + 1 ResBlocks on [features, skip]
//        (+ attention) -> Upsample -> GroupNorm, SiLU, conv_out 3x3 -> eps [N, C, S, S]
//
// as torch modules in tools/fixtures/make_unet_fixtures.py. Construct it with the type's
// default widths or an explicit WidthTable (a pruned model), read the table back with widths().
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/precompiled.hpp"
#include "progdiff/unet/decoder.hpp"
#include "progdiff/unet/encoder.hpp"

namespace progdiff::unet {

template <class... Options>
class UNet {
 public:
  using spec = Spec<Options...>;
  static_assert(spec::valid);
  static_assert(spec::decoders == 0,
                "progdiff::unet: UNet has one decoder; a Decoders<K> option belongs to MultiDecoderUNet");
  using value_type = typename spec::value_type;
  using backend_type = typename spec::backend_type;
  using T = value_type;
  using B = backend_type;

  /// The default width table: encoder layers, then decoder layers (base * multiplier per level).
  static WidthTable default_widths(std::int64_t base = spec::base_channels) {
    return join(default_encoder_widths<spec>(base), default_decoder_widths<spec>(base));
  }
  static UNetConfig default_config() { return UNetConfig::from_spec<spec>(); }

  UNet() : UNet(default_widths(), default_config()) {}
  explicit UNet(const UNetConfig& config) : UNet(default_widths(), config) {}
  // This constructor, initialize, forward, backward and flops are defined below the class, not
  // inline: GCC expands an inline member of an `extern template` class where it is called (-O2
  // and above), which would compile the encoder and decoder in every program using a precompiled net.
  /// A net of explicit per-layer widths; ConfigError names the layer of a missing entry or of
  /// a width the GroupNorm groups do not divide.
  UNet(const WidthTable& widths, const UNetConfig& config);

  void initialize(Generator& gen);
  void set_training(bool training) {
    encoder_.set_training(training);
    decoder_.set_training(training);
  }

  /// The per-layer widths, encoder then decoder, in the order the constructor takes them.
  WidthTable widths() const { return join(encoder_.widths(), decoder_.widths()); }
  const UNetConfig& config() const { return config_; }
  Shape input_shape(std::int64_t n) const { return encoder_.input_shape(n); }
  Encoder<spec>& encoder() { return encoder_; }
  Decoder<spec>& decoder() { return decoder_; }

  /// x [N, C, S, S], t [N] (timesteps, may be fractional) -> eps prediction [N, C, S, S].
  Tensor<T, B> forward(const Tensor<T, B>& x, const Tensor<T, B>& t);
  /// Host timesteps, one per sample.
  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const double> t) { return forward(x, timestep_tensor(t)); }

  /// dy [N, C, S, S] -> dx; accumulates every parameter gradient.
  Tensor<T, B> backward(const Tensor<T, B>& dy);

  std::int64_t flops(const Shape& in) const;
  std::int64_t parameter_count() const { return encoder_.parameter_count() + decoder_.parameter_count(); }

  /// Encoder names (temb, conv_in, down, mid) then decoder names (up, norm_out, conv_out).
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    encoder_.visit_parameters(f, prefix);
    decoder_.visit_parameters(f, prefix);
  }
  /// Every dropout layer, f(name, nn::Dropout&), named as the parameters ("down.0.res.0.dropout",
  /// ...): the counters a checkpoint stores so that a resumed run draws the same masks.
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    encoder_.visit_random_state(f, prefix);
    decoder_.visit_random_state(f, prefix);
  }

  static Tensor<T, B> timestep_tensor(std::span<const double> t) {
    std::vector<T> v(t.begin(), t.end());
    return Tensor<T, B>::from_host(Shape{static_cast<std::int64_t>(v.size())}, v);
  }

 private:
  UNetConfig config_;
  Encoder<spec> encoder_;
  Decoder<spec> decoder_;
};

template <class... Options>
UNet<Options...>::UNet(const WidthTable& widths, const UNetConfig& config) : config_(config) {
  const std::size_t encoder_size = encoder_layers<spec>().size();
  const std::size_t expected = encoder_size + decoder_layers<spec>().size();
  if (widths.size() != expected) {
    std::vector<std::string> names = encoder_layers<spec>();
    for (auto& n : decoder_layers<spec>()) names.push_back(n);
    expect_layers(widths, names, "UNet");
  }
  WidthTable enc, dec;
  enc.layers.assign(widths.layers.begin(), widths.layers.begin() + static_cast<std::ptrdiff_t>(encoder_size));
  dec.layers.assign(widths.layers.begin() + static_cast<std::ptrdiff_t>(encoder_size), widths.layers.end());
  encoder_ = Encoder<spec>(enc, config);
  decoder_ =
      Decoder<spec>(dec, encoder_.skip_widths(), encoder_.output_width(), encoder_.temb_width(), config.groups, config);
}

template <class... Options>
void UNet<Options...>::initialize(Generator& gen) {
  encoder_.initialize(gen);
  decoder_.initialize(gen);
}

template <class... Options>
auto UNet<Options...>::forward(const Tensor<T, B>& x, const Tensor<T, B>& t) -> Tensor<T, B> {
  EncoderOutput<T, B> e = encoder_.forward(x, t);
  return decoder_.forward(e.h, e.skips, e.temb);
}

template <class... Options>
auto UNet<Options...>::backward(const Tensor<T, B>& dy) -> Tensor<T, B> {
  return encoder_.backward(decoder_.backward(dy));
}

template <class... Options>
std::int64_t UNet<Options...>::flops(const Shape& in) const {
  const EncoderShapes s = encoder_.shapes(in);
  return s.flops + decoder_.flops(s);
}

}  // namespace progdiff::unet

#if PROGDIFF_PRECOMPILED
// The small presets' nets come from the precompiled component (src/precompiled/presets.cpp).
// An explicit instantiation cannot name an alias, hence the option lists spelled out.
#include <type_traits>

#include "progdiff/unet/small_presets.hpp"
namespace progdiff::unet {
extern template class UNet<Levels<1, 2>, ResBlocks<1>, AttentionAt<>, ImageSize<16>, ImageChannels<1>, BaseChannels<16>,
                           GroupNormGroups<8>, DropoutPercent<0>>;
extern template class UNet<Levels<1, 2, 2>, ResBlocks<1>, AttentionAt<>, ImageSize<32>, ImageChannels<1>,
                           BaseChannels<32>, GroupNormGroups<8>, DropoutPercent<0>>;
extern template class UNet<Levels<1, 2, 2, 2>, ResBlocks<2>, AttentionAt<16>, ImageSize<32>, ImageChannels<1>,
                           BaseChannels<128>, GroupNormGroups<32>, DropoutPercent<10>>;
static_assert(
    std::is_same_v<TinyUNet, UNet<Levels<1, 2>, ResBlocks<1>, AttentionAt<>, ImageSize<16>, ImageChannels<1>,
                                  BaseChannels<16>, GroupNormGroups<8>, DropoutPercent<0>>> &&
        std::is_same_v<SmallUNet, UNet<Levels<1, 2, 2>, ResBlocks<1>, AttentionAt<>, ImageSize<32>, ImageChannels<1>,
                                       BaseChannels<32>, GroupNormGroups<8>, DropoutPercent<0>>> &&
        std::is_same_v<PaperUNet, UNet<Levels<1, 2, 2, 2>, ResBlocks<2>, AttentionAt<16>, ImageSize<32>,
                                       ImageChannels<1>, BaseChannels<128>, GroupNormGroups<32>, DropoutPercent<10>>>,
    "progdiff: the extern declarations above must name unet/small_presets.hpp's nets");
}  // namespace progdiff::unet
#endif

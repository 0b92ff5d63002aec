#pragma once
// MultiDecoderUNet<Options..., Decoders<K>>: the multi-stage U-Net of "A Multi-Stage Framework
// for Diffusion Models" (Sec. 4.1, Fig. 1c): one encoder and middle block shared by all K
// timestep intervals, one decoder per interval with its own width (the paper's CIFAR-10 model:
// encoder 128 channels, decoders 192, 128, 16). Each decoder's ResBlocks take its own width
// plus the encoder's skip width. Decoders<kRunTimeCount> (unet/interval_count.hpp) takes K from
// the decoder widths the constructor is given instead of from the type.
//
// forward(x, t, interval_of_each_sample): the encoder runs once on the whole batch; the samples
// of interval k are gathered into a sub-batch, run through decoder k and scattered back. In
// backward the encoder receives gradients from every sample, decoder k only from its own.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "progdiff/unet/decoder.hpp"
#include "progdiff/unet/encoder.hpp"

namespace progdiff::unet {

/// Widths of a shared-encoder model: the encoder's table, one table and one GroupNorm group
/// count per decoder.
struct MultiDecoderWidths {
  WidthTable encoder;
  std::vector<WidthTable> decoders;
  std::vector<std::int64_t> decoder_groups;

  friend bool operator==(const MultiDecoderWidths&, const MultiDecoderWidths&) = default;
};

/// GroupNorm groups for a narrow decoder: min(base / 4, 16), at least 1 (16 channels -> 4).
inline std::int64_t narrow_groups(std::int64_t base) {
  return std::max<std::int64_t>(1, std::min<std::int64_t>(base / 4, 16));
}

template <class... Options>
class MultiDecoderUNet {
 public:
  using spec = Spec<Options...>;
  static_assert(spec::valid);
  static_assert(spec::decoders != 0,
                "progdiff::unet: MultiDecoderUNet needs a Decoders<K> option naming its number of decoders "
                "(Decoders<kRunTimeCount> for a count given at run time)");
  using value_type = typename spec::value_type;
  using backend_type = typename spec::backend_type;
  using T = value_type;
  using B = backend_type;
  /// K of Decoders<K>, or kRunTimeCount: interval_count() is the count of either kind of model.
  static constexpr int decoder_count = spec::decoders;
  static constexpr bool count_at_run_time = spec::decoders_at_run_time;

  /// Encoder of base width `encoder_base` (groups from the config), decoder k of base width
  /// decoder_bases[k] with narrow_groups(decoder_bases[k]) groups, or the largest count below
  /// it that divides every width of the encoder and of that decoder: a decoder's GroupNorms also
  /// see its widths plus the encoder's skip widths (48 + 32 channels: 12 groups do not divide them).
  /// With Decoders<kRunTimeCount>, K is decoder_bases.size().
  static MultiDecoderWidths default_widths(std::int64_t encoder_base, const std::vector<std::int64_t>& decoder_bases) {
    if constexpr (count_at_run_time)
      require(!decoder_bases.empty(),
              "MultiDecoderUNet<..., Decoders<kRunTimeCount>>::default_widths: got no decoder widths; the model "
              "needs at least one decoder");
    else
      require(decoder_bases.size() == static_cast<std::size_t>(decoder_count),
              "MultiDecoderUNet: got " + std::to_string(decoder_bases.size()) + " decoder widths for Decoders<" +
                  std::to_string(decoder_count) + ">");
    MultiDecoderWidths w{default_encoder_widths<spec>(encoder_base), {}, {}};
    std::int64_t encoder_gcd = 0;
    for (const auto& l : w.encoder.layers) encoder_gcd = std::gcd(encoder_gcd, l.channels);
    for (std::int64_t b : decoder_bases) {
      w.decoders.push_back(default_decoder_widths<spec>(b));
      std::int64_t common = encoder_gcd;
      for (const auto& l : w.decoders.back().layers) common = std::gcd(common, l.channels);
      std::int64_t groups = narrow_groups(b);
      while (groups > 1 && common % groups != 0) --groups;
      w.decoder_groups.push_back(groups);
    }
    return w;
  }
  static UNetConfig default_config() { return UNetConfig::from_spec<spec>(); }

  /// One decoder per table of widths.decoders (with Decoders<kRunTimeCount>, as many as it holds).
  MultiDecoderUNet(const MultiDecoderWidths& widths, const UNetConfig& config) : config_(config) {
    if constexpr (count_at_run_time)
      require(!widths.decoders.empty() && widths.decoder_groups.size() == widths.decoders.size(),
              "MultiDecoderUNet<..., Decoders<kRunTimeCount>>: expected at least one decoder width table and one "
              "group count per table, got " +
                  std::to_string(widths.decoders.size()) + " tables and " +
                  std::to_string(widths.decoder_groups.size()) + " group counts");
    else
      require(widths.decoders.size() == static_cast<std::size_t>(decoder_count) &&
                  widths.decoder_groups.size() == static_cast<std::size_t>(decoder_count),
              "MultiDecoderUNet: expected " + std::to_string(decoder_count) +
                  " decoder width tables and group counts, got " + std::to_string(widths.decoders.size()) + " and " +
                  std::to_string(widths.decoder_groups.size()));
    encoder_ = Encoder<spec>(widths.encoder, config);
    for (std::size_t k = 0; k < widths.decoders.size(); ++k)
      decoders_.emplace_back(widths.decoders[k], encoder_.skip_widths(), encoder_.output_width(), encoder_.temb_width(),
                             widths.decoder_groups[k], config, "MultiDecoderUNet decoder " + std::to_string(k));
  }

  void initialize(Generator& gen) {
    encoder_.initialize(gen);
    for (auto& d : decoders_) d.initialize(gen);
  }
  void set_training(bool training) {
    encoder_.set_training(training);
    for (auto& d : decoders_) d.set_training(training);
  }

  MultiDecoderWidths widths() const {
    MultiDecoderWidths w{encoder_.widths(), {}, {}};
    for (const auto& d : decoders_) {
      w.decoders.push_back(d.widths());
      w.decoder_groups.push_back(d.groups());
    }
    return w;
  }
  const UNetConfig& config() const { return config_; }
  /// K: a constant of the type with Decoders<K>, the constructor's count with Decoders<kRunTimeCount>.
  static constexpr std::int64_t interval_count() requires(!count_at_run_time) { return decoder_count; }
  std::int64_t interval_count() const requires count_at_run_time { return static_cast<std::int64_t>(decoders_.size()); }
  Shape input_shape(std::int64_t n) const { return encoder_.input_shape(n); }
  Encoder<spec>& encoder() { return encoder_; }
  Decoder<spec>& decoder(std::int64_t k) { return decoders_.at(static_cast<std::size_t>(k)); }

  /// x [N, C, S, S], t [N], interval [N] (values in [0, K)) -> eps [N, C, S, S].
  Tensor<T, B> forward(const Tensor<T, B>& x, const Tensor<T, B>& t, std::span<const std::int64_t> interval) {
    route(x.shape(), interval);
    EncoderOutput<T, B> e = encoder_.forward(x, t);
    Tensor<T, B> y(Shape{x.dim(0), spec::output_channels, x.dim(2), x.dim(3)});  // 2C with a learned variance
    for (std::size_t k = 0; k < decoders_.size(); ++k) {
      const auto& rows = rows_[k];
      if (rows.empty()) continue;
      auto& d = decoders_[k];
      if (rows.size() == static_cast<std::size_t>(x.dim(0))) {  // the whole batch: no copies
        y = d.forward(e.h, e.skips, e.temb);
        continue;
      }
      std::vector<Tensor<T, B>> skips;
      for (const auto& s : e.skips) skips.push_back(gather_rows(s, rows));
      scatter_rows(d.forward(gather_rows(e.h, rows), skips, gather_rows(e.temb, rows)), rows, y);
    }
    shapes_ = encoder_.shapes(x.shape());
    return y;
  }

  /// dy [N, C, S, S] -> dx; decoder k accumulates gradients from its interval's samples only.
  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(!rows_.empty(), "MultiDecoderUNet::backward called without a preceding forward");
    EncoderGrads<T, B> g;
    g.h = Tensor<T, B>::zeros(shapes_.h);
    g.temb = Tensor<T, B>::zeros(shapes_.temb);
    for (const auto& s : shapes_.skips) g.skips.push_back(Tensor<T, B>::zeros(s));
    for (std::size_t k = 0; k < decoders_.size(); ++k) {
      const auto& rows = rows_[k];
      if (rows.empty()) continue;
      auto& d = decoders_[k];
      if (rows.size() == static_cast<std::size_t>(dy.dim(0))) {
        g = d.backward(dy);
        continue;
      }
      EncoderGrads<T, B> gk = d.backward(gather_rows(dy, rows));
      scatter_rows(gk.h, rows, g.h);
      scatter_rows(gk.temb, rows, g.temb);
      for (std::size_t i = 0; i < gk.skips.size(); ++i) scatter_rows(gk.skips[i], rows, g.skips[i]);
    }
    rows_.clear();
    return encoder_.backward(g);
  }

  /// FLOPs of a batch of shape `in` whose samples all lie in interval k.
  std::int64_t flops(const Shape& in, std::int64_t k) const {
    const EncoderShapes s = encoder_.shapes(in);
    return s.flops + decoders_.at(static_cast<std::size_t>(k)).flops(s);
  }
  std::int64_t encoder_flops(const Shape& in) const { return encoder_.flops(in); }
  std::int64_t decoder_flops(const Shape& in, std::int64_t k) const {
    return decoders_.at(static_cast<std::size_t>(k)).flops(encoder_.shapes(in));
  }
  std::int64_t parameter_count() const {
    std::int64_t p = encoder_.parameter_count();
    for (const auto& d : decoders_) p += d.parameter_count();
    return p;
  }
  /// Parameters a sample of interval k runs through: the encoder and decoder k.
  std::int64_t parameter_count(std::int64_t k) const {
    return encoder_.parameter_count() + decoders_.at(static_cast<std::size_t>(k)).parameter_count();
  }

  /// Names: encoder.<encoder names>, decoder.<k>.<decoder names>.
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    encoder_.visit_parameters(f, nn::scoped(prefix, "encoder"));
    for (std::size_t k = 0; k < decoders_.size(); ++k)
      decoders_[k].visit_parameters(f, nn::scoped(prefix, "decoder." + std::to_string(k)));
  }
  /// Every dropout layer, f(name, nn::Dropout&), named as the parameters.
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    encoder_.visit_random_state(f, nn::scoped(prefix, "encoder"));
    for (std::size_t k = 0; k < decoders_.size(); ++k)
      decoders_[k].visit_random_state(f, nn::scoped(prefix, "decoder." + std::to_string(k)));
  }

 private:
  void route(const Shape& x, std::span<const std::int64_t> interval) {
    if (x.rank() < 1 || static_cast<std::int64_t>(interval.size()) != x[0])
      throw ShapeError("MultiDecoderUNet: got " + std::to_string(interval.size()) +
                       " interval indices for input shape " + x.str());
    const std::int64_t count = interval_count();
    rows_.assign(decoders_.size(), {});
    for (std::size_t i = 0; i < interval.size(); ++i) {
      if (interval[i] < 0 || interval[i] >= count) {
        rows_.clear();
        throw ConfigError("MultiDecoderUNet: sample " + std::to_string(i) + " names interval " +
                          std::to_string(interval[i]) + ", outside [0, " + std::to_string(count) + ")");
      }
      rows_[static_cast<std::size_t>(interval[i])].push_back(static_cast<std::int64_t>(i));
    }
  }

  UNetConfig config_;
  Encoder<spec> encoder_;
  std::vector<Decoder<spec>> decoders_;
  std::vector<std::vector<std::int64_t>> rows_;  // samples of each interval, kept for backward
  EncoderShapes shapes_;
};

}  // namespace progdiff::unet

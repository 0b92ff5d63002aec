#pragma once
// Spec<Options...>: the structure a list of U-Net options describes, with every rule that
// can be checked at compile time stated as a static_assert a user can read.
#include <array>
#include <cstdint>
#include <type_traits>

#include "progdiff/unet/options.hpp"

namespace progdiff::unet {

namespace detail {

template <class Kind, class... Os>
inline constexpr int option_count = (0 + ... + (std::is_same_v<typename Os::option_kind, Kind> ? 1 : 0));

template <class Kind, class... Os>
inline constexpr bool at_most_once = option_count<Kind, Os...> <= 1;

// The option of kind Kind among Os, or Default when none is given.
template <class Kind, class Default, class... Os>
struct select_option {
  using type = Default;
};
template <class Kind, class Default, class O, class... Os>
struct select_option<Kind, Default, O, Os...> {
  using type = std::conditional_t<std::is_same_v<typename O::option_kind, Kind>, O,
                                  typename select_option<Kind, Default, Os...>::type>;
};
template <class Kind, class Default, class... Os>
using option_t = typename select_option<Kind, Default, Os...>::type;

// Values of the integer options.
template <class L>
struct levels_of;
template <int... M>
struct levels_of<Levels<M...>> {
  static constexpr std::array<int, sizeof...(M)> value{M...};
};
template <class A>
struct attention_of;
template <int... R>
struct attention_of<AttentionAt<R...>> {
  static constexpr std::array<int, sizeof...(R)> value{R...};
};
template <class O>
struct int_of;
template <template <int> class O, int V>
struct int_of<O<V>> {
  static constexpr int value = V;
};

struct NoLevels {
  using option_kind = option_kind::Levels;
};
struct RuntimeImageSize {
  using option_kind = option_kind::ImageSize;
};
template <class O>
struct image_size_of {
  static constexpr int value = int_of<O>::value;
};
template <>
struct image_size_of<RuntimeImageSize> {
  static constexpr int value = 0;
};
struct OneDecoder {
  using option_kind = option_kind::Decoders;
};
template <class O>
struct decoders_of {
  static constexpr int value = int_of<O>::value;
};
template <>
struct decoders_of<OneDecoder> {
  static constexpr int value = 0;  // not a multi-decoder model
};

template <class Kind>
constexpr bool known_kind() {
  return std::is_same_v<Kind, option_kind::Levels> || std::is_same_v<Kind, option_kind::ResBlocks> ||
         std::is_same_v<Kind, option_kind::AttentionAt> || std::is_same_v<Kind, option_kind::AttentionLayout> ||
         std::is_same_v<Kind, option_kind::ImageSize> || std::is_same_v<Kind, option_kind::ImageChannels> ||
         std::is_same_v<Kind, option_kind::BaseChannels> || std::is_same_v<Kind, option_kind::TimeEmbedding> ||
         std::is_same_v<Kind, option_kind::GroupNormGroups> || std::is_same_v<Kind, option_kind::Dropout> ||
         std::is_same_v<Kind, option_kind::Decoders> || std::is_same_v<Kind, option_kind::Variance> ||
         std::is_same_v<Kind, option_kind::ElementType> || std::is_same_v<Kind, option_kind::Backend> ||
         std::is_same_v<Kind, option_kind::Resampling> || std::is_same_v<Kind, option_kind::SkipScale> ||
         std::is_same_v<Kind, option_kind::TimeConditioning> || std::is_same_v<Kind, option_kind::Initialization> ||
         std::is_same_v<Kind, option_kind::AttentionHeads>;
}

}  // namespace detail

/// The structure of a DDPM / DDPM++ U-Net (Ho et al. 2020, Song et al. 2021) named by options.
template <class... Options>
struct Spec {
  static_assert((Option<Options> && ...),
                "progdiff::unet: every template argument must be a U-Net option such as Levels<1, 2, 2>, "
                "ResBlocks<2>, AttentionAt<16>, ImageSize<32>, BaseChannels<64> or GroupNormGroups<32> "
                "(see progdiff/unet/options.hpp)");

 private:
  template <class Kind, class Default>
  using pick = detail::option_t<Kind, Default, Options...>;

 public:
  static_assert(detail::at_most_once<option_kind::Levels, Options...> &&
                    detail::at_most_once<option_kind::ResBlocks, Options...> &&
                    detail::at_most_once<option_kind::AttentionAt, Options...> &&
                    detail::at_most_once<option_kind::AttentionLayout, Options...> &&
                    detail::at_most_once<option_kind::ImageSize, Options...> &&
                    detail::at_most_once<option_kind::ImageChannels, Options...> &&
                    detail::at_most_once<option_kind::BaseChannels, Options...> &&
                    detail::at_most_once<option_kind::TimeEmbedding, Options...> &&
                    detail::at_most_once<option_kind::GroupNormGroups, Options...> &&
                    detail::at_most_once<option_kind::Dropout, Options...> &&
                    detail::at_most_once<option_kind::Decoders, Options...> &&
                    detail::at_most_once<option_kind::Variance, Options...> &&
                    detail::at_most_once<option_kind::ElementType, Options...> &&
                    detail::at_most_once<option_kind::Backend, Options...> &&
                    detail::at_most_once<option_kind::Resampling, Options...> &&
                    detail::at_most_once<option_kind::SkipScale, Options...> &&
                    detail::at_most_once<option_kind::TimeConditioning, Options...> &&
                    detail::at_most_once<option_kind::Initialization, Options...> &&
                    detail::at_most_once<option_kind::AttentionHeads, Options...>,
                "progdiff::unet: each kind of option may be given at most once");
  static_assert((detail::known_kind<typename Options::option_kind>() && ...),
                "progdiff::unet: an option names a kind the U-Net does not know");
  static_assert(detail::option_count<option_kind::Levels, Options...> == 1,
                "progdiff::unet: the U-Net needs a Levels<...> option, e.g. Levels<1, 2, 2>");

  using value_type = typename pick<option_kind::ElementType, ElementType<float>>::type;
  using backend_type = typename pick<option_kind::Backend, OnBackend<backend::Cpu>>::type;

  static constexpr auto multipliers = detail::levels_of<pick<option_kind::Levels, Levels<>>>::value;
  static constexpr int level_count = static_cast<int>(multipliers.size());
  static constexpr int res_blocks = detail::int_of<pick<option_kind::ResBlocks, ResBlocks<2>>>::value;
  static constexpr auto attention_resolutions =
      detail::attention_of<pick<option_kind::AttentionAt, AttentionAt<16>>>::value;
  static constexpr bool attention_every_block = pick<option_kind::AttentionLayout, DdpmAttention>::every_block;
  /// DDPM++: a decoder level attends once, after its last ResBlock.
  static constexpr bool decoder_attention_once =
      pick<option_kind::AttentionLayout, DdpmAttention>::decoder_once_per_level;
  static constexpr int heads = detail::int_of<pick<option_kind::AttentionHeads, AttentionHeads<1>>>::value;
  /// BigGAN-style Downsample / Upsample ResBlocks (DDPM++).
  static constexpr bool resblock_resampling = pick<option_kind::Resampling, ConvResampling>::res_blocks;
  static constexpr bool skip_rescale = pick<option_kind::SkipScale, UnitSkip>::rescale;
  static constexpr bool scale_shift = pick<option_kind::TimeConditioning, AdditiveTime>::scale_shift;
  static constexpr bool variance_scaling_init = pick<option_kind::Initialization, TorchInit>::variance_scaling;
  static constexpr int image_size =
      detail::image_size_of<pick<option_kind::ImageSize, detail::RuntimeImageSize>>::value;
  static constexpr int image_channels = detail::int_of<pick<option_kind::ImageChannels, ImageChannels<3>>>::value;
  static constexpr int base_channels = detail::int_of<pick<option_kind::BaseChannels, BaseChannels<64>>>::value;
  static constexpr int time_multiplier = detail::int_of<pick<option_kind::TimeEmbedding, TimeEmbedding<4>>>::value;
  static constexpr int groups = detail::int_of<pick<option_kind::GroupNormGroups, GroupNormGroups<32>>>::value;
  static constexpr int dropout_percent = detail::int_of<pick<option_kind::Dropout, DropoutPercent<10>>>::value;
  /// K of Decoders<K> (kRunTimeCount when the constructor sets it), 0 without a Decoders option.
  static constexpr int decoders = detail::decoders_of<pick<option_kind::Decoders, detail::OneDecoder>>::value;
  static constexpr bool decoders_at_run_time = decoders == kRunTimeCount;
  /// LearnedVariance doubles the outputs: the prediction, then the variance interpolation v.
  static constexpr bool learned_variance = pick<option_kind::Variance, FixedVariance>::learned;
  static constexpr int output_channels = learned_variance ? 2 * image_channels : image_channels;

 private:
  static constexpr bool multipliers_positive() {
    for (int m : multipliers)
      if (m <= 0) return false;
    return true;
  }
  static constexpr bool groups_divide_default_widths() {
    if (groups <= 0) return false;
    for (int m : multipliers)
      if ((base_channels * m) % groups != 0) return false;
    return true;
  }
  static constexpr bool image_halves_cleanly() {
    if (image_size == 0) return true;
    return level_count > 0 && image_size % (1 << (level_count - 1)) == 0;
  }
  static constexpr bool heads_divide_attention_widths() {
    if (heads <= 0) return false;
    for (int m : multipliers)
      if ((base_channels * m) % heads != 0) return false;
    return true;
  }
  static constexpr bool attention_resolutions_exist() {
    if (image_size == 0) return true;
    for (int r : attention_resolutions) {
      bool found = false;
      for (int l = 0; l < level_count; ++l)
        if ((image_size >> l) == r) found = true;
      if (!found) return false;
    }
    return true;
  }

 public:
  static_assert(level_count > 0, "progdiff::unet: Levels<> is empty; name at least one level, e.g. Levels<1, 2, 2>");
  static_assert(multipliers_positive(), "progdiff::unet: every channel multiplier in Levels<...> must be positive");
  static_assert(res_blocks > 0, "progdiff::unet: ResBlocks<N> needs N >= 1 residual blocks per level");
  static_assert(image_channels > 0, "progdiff::unet: ImageChannels<C> needs C >= 1");
  static_assert(base_channels > 0, "progdiff::unet: BaseChannels<C> needs C >= 1");
  static_assert(time_multiplier > 0, "progdiff::unet: TimeEmbedding<M> needs M >= 1");
  static_assert(dropout_percent >= 0 && dropout_percent < 100, "progdiff::unet: DropoutPercent<P> needs 0 <= P < 100");
  static_assert(detail::option_count<option_kind::Decoders, Options...> == 0 || valid_interval_count(decoders),
                "progdiff::unet: Decoders<K> needs K >= 1, or unet::kRunTimeCount for a count the constructor "
                "takes from the decoder widths it is given");
  static_assert(groups_divide_default_widths(),
                "progdiff::unet: GroupNormGroups<G> must divide every default width BaseChannels * multiplier");
  static_assert(image_size >= 0, "progdiff::unet: ImageSize<S> needs S >= 1");
  static_assert(image_halves_cleanly(),
                "progdiff::unet: ImageSize<S> must be divisible by 2^(levels - 1) so every Downsample halves it");
  static_assert(attention_resolutions_exist(),
                "progdiff::unet: an AttentionAt<...> resolution is not the resolution of any level for this "
                "ImageSize (level l works at ImageSize / 2^l)");
  static_assert(heads > 0, "progdiff::unet: AttentionHeads<H> needs H >= 1");
  static_assert(heads_divide_attention_widths(),
                "progdiff::unet: AttentionHeads<H> must divide every default width BaseChannels * multiplier");
  static_assert(!resblock_resampling || level_count > 1,
                "progdiff::unet: ResBlockResampling replaces the Downsample and Upsample layers between levels; "
                "with a single level there are none (give Levels<...> at least two multipliers or drop it)");
  static constexpr bool valid = true;
};

}  // namespace progdiff::unet

#pragma once
// The options a U-Net type is composed of. Each option is an empty tag type carrying its
// values as template arguments and naming its kind, so options may appear in any order and
// every option but Levels has a default:
//
//   unet::UNet<unet::Levels<1, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>>
//   unet::UNet<unet::Levels<1, 2>, unet::ImageSize<16>, unet::BaseChannels<8>, unet::GroupNormGroups<4>>
//
// Channel widths are run-time values (a pruned model keeps its type); BaseChannels and
// GroupNormGroups only fix the defaults from which the width table starts.
#include <cstddef>

#include "progdiff/unet/interval_count.hpp"

namespace progdiff::backend {
struct Cpu;
}

namespace progdiff::unet {

namespace option_kind {
struct Levels {};
struct ResBlocks {};
struct AttentionAt {};
struct AttentionLayout {};
struct ImageSize {};
struct ImageChannels {};
struct BaseChannels {};
struct TimeEmbedding {};
struct GroupNormGroups {};
struct Dropout {};
struct Decoders {};
struct Variance {};
struct ElementType {};
struct Backend {};
struct Resampling {};
struct SkipScale {};
struct TimeConditioning {};
struct Initialization {};
struct AttentionHeads {};
}  // namespace option_kind

/// Channel multiplier of each resolution level, finest first (DDPM's ch_mult); level l works
/// at image_size / 2^l with base * multiplier channels by default.
template <int... Multipliers>
struct Levels {
  using option_kind = option_kind::Levels;
};

/// Residual blocks per encoder level (DDPM's num_res_blocks); each decoder level has one more.
template <int Count>
struct ResBlocks {
  using option_kind = option_kind::ResBlocks;
};

/// Resolutions (in pixels per side) at which self-attention follows the residual blocks
/// (DDPM's attn_resolutions). AttentionAt<> places none outside the middle block.
template <int... Resolutions>
struct AttentionAt {
  using option_kind = option_kind::AttentionAt;
};

/// DDPM / IDDPM placement (default): attention after every ResBlock at an attention
/// resolution, in the encoder and in the decoder, and between the two middle ResBlocks.
struct DdpmAttention {
  using option_kind = option_kind::AttentionLayout;
  static constexpr bool every_block = true;
  static constexpr bool decoder_once_per_level = false;
};

/// DDPM++'s placement (Song et al. 2021, NCSNpp): as DdpmAttention in the encoder and the
/// middle block, but a decoder level attends once, after its last ResBlock.
struct DdpmppAttention {
  using option_kind = option_kind::AttentionLayout;
  static constexpr bool every_block = true;
  static constexpr bool decoder_once_per_level = true;
};

/// A lighter placement: one attention block, after the last encoder ResBlock of the first
/// attention resolution; the decoder and the middle block have none.
struct SingleEncoderAttention {
  using option_kind = option_kind::AttentionLayout;
  static constexpr bool every_block = false;
  static constexpr bool decoder_once_per_level = false;
};

/// Default attention head count (IDDPM CIFAR-10: 4); the run-time UNetConfig::heads starts from it.
template <int Heads>
struct AttentionHeads {
  using option_kind = option_kind::AttentionHeads;
};

/// DDPM's resampling (default): a strided 3x3 convolution down, nearest x2 and a 3x3 convolution up.
struct ConvResampling {
  using option_kind = option_kind::Resampling;
  static constexpr bool res_blocks = false;
};

/// BigGAN-style resampling (DDPM++'s resblock_type "biggan"): the Downsample and Upsample layers
/// are ResBlocks whose inner path and 1x1 skip resample (2x2 mean down, nearest x2 up), with
/// the time embedding like every ResBlock. Parameter names: <layer>.norm1, .conv1, .temb_proj,
/// .norm2, .conv2, .skip, as a ResBlock's.
struct ResBlockResampling {
  using option_kind = option_kind::Resampling;
  static constexpr bool res_blocks = true;
};

/// Residual sums as they are (default; DDPM, IDDPM).
struct UnitSkip {
  using option_kind = option_kind::SkipScale;
  static constexpr bool rescale = false;
};

/// DDPM++'s skip_rescale: every ResBlock and attention block divides skip + residual by sqrt(2).
struct SkipRescale {
  using option_kind = option_kind::SkipScale;
  static constexpr bool rescale = true;
};

/// The time embedding is added to the features before a ResBlock's second GroupNorm (default; DDPM).
struct AdditiveTime {
  using option_kind = option_kind::TimeConditioning;
  static constexpr bool scale_shift = false;
};

/// IDDPM's use_scale_shift_norm: the embedding gives a scale and a shift per channel (2 C
/// outputs of temb_proj), applied as norm2(h) * (1 + scale) + shift.
struct ScaleShiftTime {
  using option_kind = option_kind::TimeConditioning;
  static constexpr bool scale_shift = true;
};

/// PyTorch's default initialization of every layer (default).
struct TorchInit {
  using option_kind = option_kind::Initialization;
  static constexpr bool variance_scaling = false;
};

/// DDPM / DDPM++'s initialization (Ho et al.'s and Song et al.'s default_init): weights
/// U(-sqrt(3 s / fan_avg), sqrt(3 s / fan_avg)) with fan_avg = (fan_in + fan_out) / 2 and s = 1
/// (s = 0.1 for the attention's q, k, v, each counted as its own C x C layer), biases 0, and the
/// last convolution of every ResBlock (conv2), of every attention block (proj) and conv_out
/// zero, so every residual branch starts as the identity.
struct VarianceScalingInit {
  using option_kind = option_kind::Initialization;
  static constexpr bool variance_scaling = true;
};

/// Image side length fixed at compile time, so attention resolutions are checked by the
/// compiler; without it the side length is a run-time value of UNetConfig.
template <int Pixels>
struct ImageSize {
  using option_kind = option_kind::ImageSize;
};

/// Channels of the image (input and eps prediction).
template <int Channels>
struct ImageChannels {
  using option_kind = option_kind::ImageChannels;
};

/// Default width of level 0 (DDPM's ch); the width table may override every layer.
template <int Channels>
struct BaseChannels {
  using option_kind = option_kind::BaseChannels;
};

/// Width of the time embedding as a multiple of the base width (DDPM: 4 * ch).
template <int Multiplier>
struct TimeEmbedding {
  using option_kind = option_kind::TimeEmbedding;
};

/// Default GroupNorm group count (DDPM: 32).
template <int Groups>
struct GroupNormGroups {
  using option_kind = option_kind::GroupNormGroups;
};

/// Default dropout probability before each ResBlock's second convolution, in percent
/// (DDPM CIFAR-10: 10).
template <int Percent>
struct DropoutPercent {
  using option_kind = option_kind::Dropout;
};

/// Number of decoders of a shared-encoder model: one per timestep interval. Decoders<kRunTimeCount>
/// leaves the count to the constructor: the number of decoder width tables it is given.
template <int Count>
struct Decoders {
  using option_kind = option_kind::Decoders;
};

/// The network predicts its mean only: ImageChannels outputs (the default; DDPM).
struct FixedVariance {
  using option_kind = option_kind::Variance;
  static constexpr bool learned = false;
};

/// The network also predicts the interpolation v of its variance between beta_t and beta-tilde_t
/// (IDDPM, Nichol & Dhariwal 2021, eq. 15): 2 * ImageChannels outputs, the prediction first and
/// v second. Such a model trains with train::HybridObjective and samples with
/// sample::LearnedVarianceDdpm (or any sampler through sample::MeanOnly).
struct LearnedVariance {
  using option_kind = option_kind::Variance;
  static constexpr bool learned = true;
};

/// Element type of tensors and parameters (default float).
template <class T>
struct ElementType {
  using option_kind = option_kind::ElementType;
  using type = T;
};

/// Back end the model runs on (default backend::Cpu).
template <class B>
struct OnBackend {
  using option_kind = option_kind::Backend;
  using type = B;
};

/// A type usable as a U-Net option.
template <class O>
concept Option = requires {
  typename O::option_kind;
};

}  // namespace progdiff::unet

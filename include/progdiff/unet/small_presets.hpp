#pragma once
// Small U-Nets on gray images to start from, as option lists applied to any U-Net type (like
// unet/presets.hpp's CIFAR-10 models):
//
//   unet::TinyGray16<unet::UNet>                                   // a first program's net
//   unet::SmallGray32<unet::MultiDecoderUNet, unet::Decoders<3>>   // extra options appended
//
// With the precompiled component (core/precompiled.hpp), TinyUNet, SmallUNet and PaperUNet (the
// presets on UNet with no extra option, float on the CPU back end) come compiled, with
// model::Progressive of each, its stage-1 and stage-2 training on schedule::Linear<1000>, DDIM
// sampling and its checkpoints: a program that uses them compiles none of that itself.
#include "progdiff/unet/options.hpp"

namespace progdiff::unet {

template <class... Options>
class UNet;  // unet/unet.hpp

/// A first program's net: gray 16x16 images, two levels (16 and 8 pixels) of 16 and 32
/// channels, one ResBlock each, no attention, no dropout; trains a step in milliseconds.
template <template <class...> class Net, class... Extra>
using TinyGray16 = Net<Levels<1, 2>, ResBlocks<1>, AttentionAt<>, ImageSize<16>, ImageChannels<1>, BaseChannels<16>,
                       GroupNormGroups<8>, DropoutPercent<0>, Extra...>;

/// The main job's small scale: gray 32x32, three levels (32, 16, 8 pixels), one ResBlock each,
/// no attention, 32 base channels, no dropout (short runs do not overfit).
template <template <class...> class Net, class... Extra>
using SmallGray32 = Net<Levels<1, 2, 2>, ResBlocks<1>, AttentionAt<>, ImageSize<32>, ImageChannels<1>, BaseChannels<32>,
                        GroupNormGroups<8>, DropoutPercent<0>, Extra...>;

/// The papers' CIFAR-10 scale on gray images (DDPM's U-Net, unet::DdpmCifar10, with one image
/// channel): 128 base channels, levels 1-2-2-2, two ResBlocks, attention at 16x16, dropout 0.1.
template <template <class...> class Net, class... Extra>
using PaperGray32 = Net<Levels<1, 2, 2, 2>, ResBlocks<2>, AttentionAt<16>, ImageSize<32>, ImageChannels<1>,
                        BaseChannels<128>, GroupNormGroups<32>, DropoutPercent<10>, Extra...>;

/// The instances the precompiled component holds.
using TinyUNet = TinyGray16<UNet>;
using SmallUNet = SmallGray32<UNet>;
using PaperUNet = PaperGray32<UNet>;

}  // namespace progdiff::unet

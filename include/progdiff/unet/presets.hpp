#pragma once
// The papers' CIFAR-10 U-Nets as option lists, applied to any U-Net type, so the unified,
// multi-decoder and separate-experts models (and pruning) take them alike:
//
//   unet::DdpmCifar10<unet::UNet>                                   // one network
//   unet::DdpmppCifar10<unet::MultiDecoderUNet, unet::Decoders<3>>  // shared encoder, 3 decoders
//   unet::IddpmCifar10<unet::UNet, unet::ElementType<double>>       // extra options appended
//
// Parameter counts and multiply-accumulates per 32x32 image are checked against PyTorch builds
// of the same models and the papers' figures in tests/ddpmpp_test.cpp.
#include "progdiff/unet/options.hpp"

namespace progdiff::unet {

/// DDPM's CIFAR-10 model (Ho et al. 2020, App. B): 128 channels, multipliers 1, 2, 2, 2, two
/// ResBlocks per level, attention at 16x16, dropout 0.1; 35.7M parameters.
template <template <class...> class Net, class... Extra>
using DdpmCifar10 = Net<Levels<1, 2, 2, 2>, ResBlocks<2>, AttentionAt<16>, ImageSize<32>, BaseChannels<128>,
                        DropoutPercent<10>, Extra...>;

/// IDDPM's CIFAR-10 model (Nichol & Dhariwal 2021; the TDC and step-adaptive papers' base):
/// three ResBlocks per level, attention at 16x16 and 8x8 with 4 heads, scale-shift time
/// conditioning, learned variance (6 outputs), dropout 0.3; 52.5M parameters, 8.14 G
/// multiply-accumulates of its convolutions and linear layers.
template <template <class...> class Net, class... Extra>
using IddpmCifar10 = Net<Levels<1, 2, 2, 2>, ResBlocks<3>, AttentionAt<16, 8>, AttentionHeads<4>, ImageSize<32>,
                         BaseChannels<128>, DropoutPercent<30>, ScaleShiftTime, LearnedVariance, Extra...>;

/// DDPM++ (Song et al. 2021, cifar10_ddpmpp_continuous; the U-Net of the multi-stage paper's
/// Table 3 with 128 channels): four ResBlocks per level, attention at 16x16 (DDPM++'s
/// placement), BigGAN-style resampling blocks, skip rescaling, DDPM++'s initialization,
/// dropout 0.1; 61.8M parameters.
template <template <class...> class Net, class... Extra>
using DdpmppCifar10 =
    Net<Levels<1, 2, 2, 2>, ResBlocks<4>, AttentionAt<16>, DdpmppAttention, ImageSize<32>, BaseChannels<128>,
        DropoutPercent<10>, ResBlockResampling, SkipRescale, VarianceScalingInit, Extra...>;

/// DDPM++ deep (Song et al. 2021, cifar10_ddpmpp_deep_continuous): as DdpmppCifar10 with eight
/// ResBlocks per level; 106.6M parameters.
template <template <class...> class Net, class... Extra>
using DdpmppDeepCifar10 =
    Net<Levels<1, 2, 2, 2>, ResBlocks<8>, AttentionAt<16>, DdpmppAttention, ImageSize<32>, BaseChannels<128>,
        DropoutPercent<10>, ResBlockResampling, SkipRescale, VarianceScalingInit, Extra...>;

}  // namespace progdiff::unet

// The U-Net layout against the DDPM structure written out by hand (Ho et al. 2020, Appendix B:
// num_res_blocks ResBlocks per level, attention at the 16x16 level, one more ResBlock per
// decoder level taking a skip, conv_in and every encoder block and downsample pushing one).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/unet/layout.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_unet_layout {

namespace {

namespace unet = progdiff::unet;

using Ddpm = unet::Spec<unet::Levels<1, 2>, unet::ResBlocks<2>, unet::AttentionAt<8>, unet::ImageSize<16>>;
using Single = unet::Spec<unet::Levels<1, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<8, 4>,
                          unet::SingleEncoderAttention, unet::ImageSize<16>>;

std::vector<std::string> attention_names(const std::vector<unet::LayoutLayer>& layout) {
  std::vector<std::string> names;
  for (const auto& layer : layout)
    if (!layer.attention.empty()) names.push_back(layer.attention);
  return names;
}

}  // namespace

TEST_CASE("the encoder layout of a two-level DDPM U-Net, layer by layer") {
  const auto layout = unet::encoder_layout<Ddpm>(16);
  const std::vector<std::string> names{"temb.sinusoid", "temb.hidden",  "temb.out",          "conv_in",
                                       "down.0.res.0",  "down.0.res.1", "down.0.downsample", "down.1.res.0",
                                       "down.1.res.1",  "mid.res.0",    "mid.res.1"};
  CHECK(unet::layer_names(layout) == names);
  // Attention at side 8 (level 1) after each ResBlock, and between the middle blocks.
  CHECK(attention_names(layout) == std::vector<std::string>{"down.1.attn.0", "down.1.attn.1", "mid.attn"});
  std::vector<std::int64_t> sides, multipliers;
  int skips = 0;
  for (const auto& layer : layout) {
    sides.push_back(layer.side);
    multipliers.push_back(layer.multiplier);
    skips += unet::pushes_skip(layer) ? 1 : 0;
  }
  CHECK(sides == std::vector<std::int64_t>{0, 0, 0, 16, 16, 16, 16, 8, 8, 8, 8});
  CHECK(multipliers == std::vector<std::int64_t>{1, 4, 4, 1, 1, 1, 1, 2, 2, 2, 2});
  CHECK(skips == 6);
  CHECK(unet::skip_count<Ddpm>() == 6);
}

TEST_CASE("the decoder layout takes the skips from the last pushed, coarsest level first") {
  const auto layout = unet::decoder_layout<Ddpm>(16);
  const std::vector<std::string> names{"up.1.res.0", "up.1.res.1", "up.1.res.2", "up.1.upsample",
                                       "up.0.res.0", "up.0.res.1", "up.0.res.2"};
  CHECK(unet::layer_names(layout) == names);
  std::vector<std::int64_t> skips;
  for (const auto& layer : layout)
    if (layer.role == unet::LayerRole::DecoderRes) skips.push_back(layer.skip);
  CHECK(skips == std::vector<std::int64_t>{5, 4, 3, 2, 1, 0});
  CHECK(attention_names(layout) == std::vector<std::string>{"up.1.attn.0", "up.1.attn.1", "up.1.attn.2"});
}

TEST_CASE("the single-attention layout attends once, after the last block of the first attention level") {
  CHECK(attention_names(unet::encoder_layout<Single>(16)) == std::vector<std::string>{"down.1.attn.1"});
  CHECK(attention_names(unet::decoder_layout<Single>(16)).empty());
}

TEST_CASE("without an image size the layout names the layers and places no attention") {
  const auto sized = unet::encoder_layout<Ddpm>(16), unsized = unet::encoder_layout<Ddpm>(0);
  CHECK(unet::layer_names(sized) == unet::layer_names(unsized));
  CHECK(attention_names(unsized).empty());
}

TEST_CASE("a U-Net's parameters are named by its layout") {
  using Net = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<2>, unet::AttentionAt<8>, unet::ImageSize<16>,
                         unet::BaseChannels<8>, unet::GroupNormGroups<4>>;
  Net net;
  std::vector<std::string> blocks;
  net.visit_parameters(
      [&](const std::string& name, auto&) {
        const auto at = name.find(".conv1.weight");
        const auto attn = name.find(".qkv.weight");
        if (at != std::string::npos) blocks.push_back(name.substr(0, at));
        if (attn != std::string::npos) blocks.push_back(name.substr(0, attn));
      },
      std::string());
  std::vector<std::string> expected;
  for (const auto& layout : {unet::encoder_layout<Net::spec>(16), unet::decoder_layout<Net::spec>(16)})
    for (const auto& layer : layout) {
      if (layer.role == unet::LayerRole::EncoderRes || layer.role == unet::LayerRole::MiddleRes ||
          layer.role == unet::LayerRole::DecoderRes)
        expected.push_back(layer.name);
      if (!layer.attention.empty()) expected.push_back(layer.attention);
    }
  CHECK(blocks == expected);
  CHECK(blocks.size() == 4 + 2 + 6 + 6);  // encoder, middle, decoder ResBlocks; attention (2 + 1 + 3)
}

}  // namespace progdiff_tests_unet_layout

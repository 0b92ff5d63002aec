#pragma once
// What the memory tests share: small U-Nets with every kind of cached state (attention in the
// encoder, the middle and the decoder, 10% dropout), the CPU back end's live tensor bytes, and
// deterministic inputs.
#include <cstddef>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/memory_stats.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff::test {

using MemoryNet = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                             unet::ImageChannels<2>, unet::BaseChannels<8>, unet::GroupNormGroups<4>>;
using MemoryMulti =
    unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                           unet::ImageChannels<2>, unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::Decoders<2>>;
using CpuTensorF = Tensor<float, backend::Cpu>;

/// A MemoryMulti with decoder widths 8 and 4, initialized from `gen`.
inline MemoryMulti initialized_multi(Generator& gen) {
  MemoryMulti multi(MemoryMulti::default_widths(8, {8, 4}), MemoryMulti::default_config());
  multi.initialize(gen);
  return multi;
}

/// Bytes held by CPU tensors now.
inline std::size_t live_bytes() { return backend::cpu::memory_stats().live_bytes; }
/// The bytes a tensor's block holds.
inline std::size_t bytes_of(const CpuTensorF& t) { return backend::cpu::block_bytes<float>(t.size()); }

/// A tensor of `s` filled with a fixed pattern in [-0.5, 0.5).
inline CpuTensorF ramp(const Shape& s) {
  std::vector<float> v(static_cast<std::size_t>(s.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 17) / 17.0f - 0.5f;
  return CpuTensorF::from_host(s, v);
}

}  // namespace progdiff::test

#pragma once
// The model types, schedule and checkpoint reading that the main job (02_progressive) and the
// checkpoint sampler (04_sample_checkpoint) share.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/model.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/checkpoint.hpp"
#include "progdiff/train/ema.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace job {

namespace pd = progdiff;
namespace unet = progdiff::unet;
using Cpu = pd::backend::Cpu;

/// DDPM's linear beta schedule over 1000 steps (Ho et al. 2020).
using Schedule = pd::schedule::Linear<1000>;

/// The default scale: three levels (32, 16, 8 pixels), one residual block per level, no
/// attention, gray 32x32 images, no dropout (short runs do not overfit); the base width is a
/// run-time value (--channels).
struct SmallScale {
  static constexpr const char* name = "small";
  using Net =
      unet::UNet<unet::Levels<1, 2, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<32>,
                 unet::ImageChannels<1>, unet::BaseChannels<32>, unet::GroupNormGroups<8>, unet::DropoutPercent<0>>;
  template <int K>
  using Multi = unet::MultiDecoderUNet<unet::Levels<1, 2, 2>, unet::ResBlocks<1>, unet::AttentionAt<>,
                                       unet::ImageSize<32>, unet::ImageChannels<1>, unet::BaseChannels<32>,
                                       unet::GroupNormGroups<8>, unet::DropoutPercent<0>, unet::Decoders<K>>;
};

/// The papers' CIFAR-10 scale (DDPM's U-Net: 128 channels, levels 1-2-2-2, two residual blocks,
/// attention at 16x16, dropout 0.1; the multi-stage paper's encoder), on gray images.
struct PaperScale {
  static constexpr const char* name = "paper";
  using Net =
      unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>,
                 unet::ImageChannels<1>, unet::BaseChannels<128>, unet::GroupNormGroups<32>, unet::DropoutPercent<10>>;
  template <int K>
  using Multi = unet::MultiDecoderUNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>,
                                       unet::ImageSize<32>, unet::ImageChannels<1>, unet::BaseChannels<128>,
                                       unet::GroupNormGroups<32>, unet::DropoutPercent<10>, unet::Decoders<K>>;
};

/// Decoder counts the multi-stage variant is compiled for.
inline constexpr int kMinDecoders = 2, kMaxDecoders = 4;

/// The base widths of the decoders of a multi-stage model with `count` decoders and an encoder of
/// base width `base`: the multi-stage paper's CIFAR-10 proportions (decoders 192, 128, 16 for an
/// encoder of 128, widest for the cleanest interval), interpolated for other counts; rounded to a
/// multiple of 8 (of 16 above 64, so that its 16 GroupNorm groups divide it), at least 8.
inline std::vector<std::int64_t> decoder_bases(std::int64_t base, std::int64_t count) {
  std::vector<std::int64_t> out;
  for (std::int64_t k = 0; k < count; ++k) {
    const double p = count == 1 ? 0.5 : static_cast<double>(k) / static_cast<double>(count - 1);
    const double ratio = p <= 0.5 ? 1.5 + (1.0 - 1.5) * (p / 0.5) : 1.0 + (0.125 - 1.0) * ((p - 0.5) / 0.5);
    const double w = ratio * static_cast<double>(base);
    const std::int64_t step = w > 64 ? 16 : 8;
    out.push_back(std::max<std::int64_t>(8, step * std::llround(w / static_cast<double>(step))));
  }
  return out;
}

/// The value of `key` in a checkpoint description; ConfigError naming the key when absent.
inline std::string described(const pd::model::Description& d, const std::string& key, const std::string& source) {
  auto it = d.find(key);
  if (it == d.end()) throw pd::ConfigError(source + ": the checkpoint's description has no key '" + key + "'");
  return it->second;
}

/// The UNetConfig a description holds under "<prefix>config.*" (model/description.hpp).
inline unet::UNetConfig config_from_description(const pd::model::Description& d, const std::string& prefix,
                                                const std::string& source) {
  auto get = [&](const char* field) { return described(d, prefix + "config." + field, source); };
  unet::UNetConfig c;
  c.image_size = std::stoll(get("image_size"));
  c.groups = std::stoll(get("groups"));
  c.dropout = std::stod(get("dropout"));
  c.heads = std::stoll(get("heads"));
  c.eps = std::stod(get("eps"));
  c.time_shift = std::stod(get("time_shift"));
  c.max_period = std::stod(get("max_period"));
  return c;
}

/// The partition of "model.boundaries" ("0,250,1000").
inline pd::group::Partition partition_from_description(const pd::model::Description& d, const std::string& source) {
  const std::string starts = described(d, "model.boundaries", source);
  pd::group::Partition p;
  for (std::size_t i = 0; i < starts.size();) {
    std::size_t j = starts.find(',', i);
    if (j == std::string::npos) j = starts.size();
    p.starts.push_back(std::stoll(starts.substr(i, j - i)));
    i = j + 1;
  }
  p.validate(p.size());
  return p;
}

/// The checkpoint description a trainer writes for `model` (train::Trainer::description()).
template <class Model>
pd::train::ModelDescription checkpoint_description(const Model& model, const Schedule& schedule) {
  pd::train::ModelDescription d = model.describe();
  pd::model::describe_schedule(d, schedule);
  return d;
}

/// Loads the weights of a trainer's checkpoint into `model` and replaces them by their EMA when
/// the checkpoint holds one; returns whether it did. ConfigError lists every description key
/// that differs from `model`'s (train/checkpoint.hpp).
template <class Model>
bool load_ema_weights(const std::filesystem::path& path, Model& model, const Schedule& schedule) {
  using T = typename Model::value_type;
  using B = typename Model::backend_type;
  const auto file = pd::io::read_safetensors(path);
  const bool has_ema = file.contains("ema.updates");
  pd::train::Ema<T, B> ema;
  pd::train::load_checkpoint(path, model, checkpoint_description(model, schedule),
                             static_cast<pd::train::AdamW<T, B>*>(nullptr), has_ema ? &ema : nullptr);
  if (has_ema) ema.copy_to(model);
  return has_ema;
}

}  // namespace job

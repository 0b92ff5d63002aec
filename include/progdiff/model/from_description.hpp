#pragma once
// Rebuilding a model from the description its checkpoint carries (model/description.hpp), so a
// program that samples or evaluates a checkpoint needs to know only the model's type, not its
// widths, boundaries or run-time configuration:
//
//   const auto d = io::read_safetensors(path).metadata;
//   auto model = model::multi_decoder_from_description<Multi>(d, path.string());
//   train::load_ema_weights(path, model, schedule);      // train/ema_weights.hpp
//
// Progressive models have Progressive<Net>::from_description; a missing or malformed key is a
// ConfigError naming the key and `source` (the file it came from).
#include <cstdint>
#include <exception>
#include <string>
#include <utility>

#include "progdiff/core/error.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/model/description.hpp"
#include "progdiff/model/interval_routed.hpp"
#include "progdiff/schedule/prediction_type.hpp"
#include "progdiff/unet/config.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"

namespace progdiff::model {

/// The value of `key`; ConfigError naming the key and `source` when absent.
inline const std::string& description_value(const Description& d, const std::string& key, const std::string& source) {
  const auto it = d.find(key);
  if (it == d.end()) throw ConfigError(source + ": the checkpoint's description has no key '" + key + "'");
  return it->second;
}

namespace detail {
/// A whole-string integer or real of `key`; ConfigError naming both when it is not one.
template <class F>
auto parse_described(const Description& d, const std::string& key, const std::string& source, F&& parse) {
  const std::string& v = description_value(d, key, source);
  try {
    std::size_t used = 0;
    auto x = parse(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw ConfigError(source + ": the checkpoint's '" + key + "' is '" + v + "', not a number");
}
inline std::int64_t described_integer(const Description& d, const std::string& key, const std::string& source) {
  return parse_described(d, key, source, [](const std::string& v, std::size_t* used) { return std::stoll(v, used); });
}
inline double described_real(const Description& d, const std::string& key, const std::string& source) {
  return parse_described(d, key, source, [](const std::string& v, std::size_t* used) { return std::stod(v, used); });
}
}  // namespace detail

/// The UNetConfig written under "<prefix>config.*" by describe_config.
inline unet::UNetConfig config_from_description(const Description& d, const std::string& prefix,
                                                const std::string& source) {
  auto integer = [&](const char* f) { return detail::described_integer(d, prefix + "config." + f, source); };
  auto real = [&](const char* f) { return detail::described_real(d, prefix + "config." + f, source); };
  unet::UNetConfig c;
  c.image_size = integer("image_size");
  c.groups = integer("groups");
  c.dropout = real("dropout");
  c.heads = integer("heads");
  c.eps = real("eps");
  c.time_shift = real("time_shift");
  c.max_period = real("max_period");
  // Written only when not the default (U-Nets imported from diffusers' DDPM models).
  if (d.contains(prefix + "config.downsample_padding")) c.downsample_padding = integer("downsample_padding");
  return c;
}

/// The partition of "model.boundaries" ("0,250,1000"), validated.
inline group::Partition partition_from_description(const Description& d, const std::string& source) {
  const std::string& starts = description_value(d, "model.boundaries", source);
  group::Partition p;
  for (std::size_t i = 0; i <= starts.size();) {
    std::size_t j = starts.find(',', i);
    if (j == std::string::npos) j = starts.size();
    const std::string field = starts.substr(i, j - i);
    std::size_t used = 0;
    try {
      p.starts.push_back(std::stoll(field, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    if (field.empty() || used != field.size())
      throw ConfigError(source + ": the checkpoint's 'model.boundaries' is '" + starts + "', not a list of timesteps");
    i = j + 1;
  }
  p.validate(p.size());
  return p;
}

/// The prediction type of "model.prediction" (prediction_label's names).
inline schedule::PredictionType prediction_from_description(const Description& d, const std::string& source) {
  using schedule::PredictionType;
  const std::string& name = description_value(d, "model.prediction", source);
  for (PredictionType p : {PredictionType::Epsilon, PredictionType::Sample, PredictionType::VPrediction})
    if (name == prediction_label(p)) return p;
  throw ConfigError(source + ": the checkpoint's 'model.prediction' is '" + name + "', not a known prediction type");
}

/// The shared-encoder model (type `Multi`, a unet::MultiDecoderUNet) with the encoder and
/// decoder widths, GroupNorm groups, configuration, boundaries and prediction type that `d`
/// describes, weights initialized from `seed` (load the checkpoint's weights next). ConfigError
/// when `d` describes another kind or structure of model, or, for a type with Decoders<K>, another
/// number of decoders; a type with Decoders<kRunTimeCount> takes the checkpoint's count.
template <class Multi>
IntervalRouted<Multi> multi_decoder_from_description(const Description& d, const std::string& source,
                                                     std::uint64_t seed = 0) {
  using Spec = typename Multi::spec;
  const std::string& kind = description_value(d, "model.kind", source);
  const std::string& structure = description_value(d, "model.structure", source);
  if (kind != "multi_decoder" || structure != unet_structure<Spec>())
    throw ConfigError(source + ": the checkpoint holds a '" + kind + "' model with structure '" + structure +
                      "', not a shared-encoder model of structure '" + unet_structure<Spec>() + "'");
  const std::int64_t decoders = detail::described_integer(d, "model.groups", source);
  if constexpr (Multi::count_at_run_time) {
    if (decoders < 1)
      throw ConfigError(source + ": the checkpoint's 'model.groups' is " + std::to_string(decoders) +
                        "; a shared-encoder model has at least one decoder");
  } else if (decoders != Multi::interval_count()) {
    throw ConfigError(source + ": the checkpoint's model has " + std::to_string(decoders) + " decoders, this type " +
                      std::to_string(Multi::interval_count()));
  }
  unet::MultiDecoderWidths w;
  w.encoder = widths_from_description(d, "encoder.", unet::default_encoder_widths<Spec>());
  for (std::int64_t k = 0; k < decoders; ++k) {
    const std::string prefix = "decoder" + std::to_string(k) + ".";
    w.decoders.push_back(widths_from_description(d, prefix, unet::default_decoder_widths<Spec>()));
    w.decoder_groups.push_back(detail::described_integer(d, prefix + "groupnorm_groups", source));
  }
  IntervalRouted<Multi> model(Multi(std::move(w), config_from_description(d, "", source)),
                              partition_from_description(d, source), prediction_from_description(d, source));
  Generator gen(seed);
  model.initialize(gen);
  return model;
}

}  // namespace progdiff::model

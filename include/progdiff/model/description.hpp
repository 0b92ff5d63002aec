#pragma once
// Model descriptions for checkpoints: flat key/value maps (io::ModelDescription) that name
// everything fixing a model's tensors and meaning, so load_checkpoint can refuse a different
// model key by key before reading a single weight.
//
//   <prefix>structure         the type-level U-Net structure (levels, blocks, attention, image, dtype)
//   <prefix>config.<field>    the run-time UNetConfig (image size, GroupNorm groups, dropout, ...)
//   <prefix>width.<layer>     every layer's channel width (a pruned net differs here)
//   schedule.<field>          grid size, beta kind and range where the schedule has them, and
//                             alpha-bar at the first, middle and last grid point (17 digits)
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "progdiff/schedule/betas.hpp"
#include "progdiff/schedule/noise_schedule.hpp"
#include "progdiff/schedule/prediction_type.hpp"
#include "progdiff/unet/config.hpp"
#include "progdiff/unet/width_table.hpp"

namespace progdiff::model {

using Description = std::map<std::string, std::string>;  // the same type as io::ModelDescription

/// A double written with 17 significant digits, so equal strings mean equal values.
inline std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

inline const char* prediction_label(schedule::PredictionType p) {
  switch (p) {
    case schedule::PredictionType::Epsilon:
      return "epsilon";
    case schedule::PredictionType::Sample:
      return "sample";
    case schedule::PredictionType::VPrediction:
      return "v_prediction";
  }
  return "?";
}

/// The structure a U-Net Spec fixes at compile time, as one readable string, e.g.
/// "levels=1,2 res_blocks=1 attention=8 layout=ddpm image=8 channels=1 time_multiplier=4 dtype=f32".
template <class S>
std::string unet_structure() {
  std::string s = "levels=";
  for (std::size_t l = 0; l < S::multipliers.size(); ++l) {
    if (l) s += ',';  // appended separately: GCC 12 warns falsely on ("," + string) (-Wrestrict)
    s += std::to_string(S::multipliers[l]);
  }
  s += " res_blocks=" + std::to_string(S::res_blocks) + " attention=";
  if (S::attention_resolutions.size() == 0) s += "none";
  // A range-for: an index loop over the empty array of AttentionAt<> makes nvcc warn (#186-D).
  bool first = true;
  for (const auto resolution : S::attention_resolutions) {
    if (!first) s += ',';
    first = false;
    s += std::to_string(resolution);
  }
  s += std::string(" layout=") + (S::attention_every_block ? "ddpm" : "sparse");
  s += " image=" + std::to_string(S::image_size) + " channels=" + std::to_string(S::image_channels);
  s += " time_multiplier=" + std::to_string(S::time_multiplier);
  // Only a learned variance is named, so the structures of existing checkpoints stay as written.
  if constexpr (requires { S::learned_variance; })
    if (S::learned_variance) s += " variance=learned";
  s += std::string(" dtype=") + (sizeof(typename S::value_type) == 4 ? "f32" : "f64");
  return s;
}

/// Adds "<prefix>width.<layer>" for every layer of `widths`.
inline void describe_widths(Description& d, const std::string& prefix, const unet::WidthTable& widths) {
  for (const auto& w : widths.layers) d[prefix + "width." + w.layer] = std::to_string(w.channels);
}

/// The width table of the layers named by `reference` read back from "<prefix>width.<layer>";
/// ConfigError naming the first missing key.
inline unet::WidthTable widths_from_description(const Description& d, const std::string& prefix,
                                                const unet::WidthTable& reference) {
  unet::WidthTable t;
  for (const auto& w : reference.layers) {
    auto it = d.find(prefix + "width." + w.layer);
    if (it == d.end()) throw ConfigError("model description lacks key '" + prefix + "width." + w.layer + "'");
    t.layers.push_back({w.layer, std::stoll(it->second)});
  }
  return t;
}

/// Adds "<prefix>config.<field>" for every field of a UNetConfig.
inline void describe_config(Description& d, const std::string& prefix, const unet::UNetConfig& c) {
  d[prefix + "config.image_size"] = std::to_string(c.image_size);
  d[prefix + "config.groups"] = std::to_string(c.groups);
  d[prefix + "config.dropout"] = exact(c.dropout);
  d[prefix + "config.heads"] = std::to_string(c.heads);
  d[prefix + "config.eps"] = exact(c.eps);
  d[prefix + "config.time_shift"] = exact(c.time_shift);
  d[prefix + "config.max_period"] = exact(c.max_period);
  // Only when not the default, so descriptions written before the field existed still match.
  if (c.downsample_padding != 1) d[prefix + "config.downsample_padding"] = std::to_string(c.downsample_padding);
}

/// Adds "schedule.*": the grid size, the beta kind and range of discrete schedules (types with
/// `kind` and settings()), and alpha-bar at the first, middle and last grid point, which tells
/// any two different schedules apart in practice.
template <schedule::NoiseSchedule S>
void describe_schedule(Description& d, const S& s) {
  const auto n = static_cast<std::int64_t>(s.size());
  d["schedule.size"] = std::to_string(n);
  if constexpr (requires {
                  S::kind;
                  s.settings().beta_start;
                }) {
    d["schedule.betas"] = schedule::beta_kind_name(S::kind);
    d["schedule.beta_start"] = exact(s.settings().beta_start);
    d["schedule.beta_end"] = exact(s.settings().beta_end);
  }
  if (n > 0) {
    d["schedule.alpha_bar.first"] = exact(s.alpha_bar(0));
    d["schedule.alpha_bar.middle"] = exact(s.alpha_bar(n / 2));
    d["schedule.alpha_bar.last"] = exact(s.alpha_bar(n - 1));
  }
}

}  // namespace progdiff::model

#pragma once
// DiffusersUNetConfig: the keys of a diffusers UNet2DModel config.json that progdiff reads and
// writes, with diffusers' own defaults for absent keys (UNet2DModel.__init__ of diffusers 0.27).
// Parsing refuses what no progdiff U-Net can express with a ConfigError naming the key, its
// value and what is supported; whether the config fits one particular U-Net type is a separate
// question (diffusers_structure.hpp). Unknown keys are ignored, as diffusers ignores them.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/core/json_file.hpp"

namespace progdiff::interop {

inline constexpr const char* kDiffusersVersion = "0.27.2";  // the version the fixtures were made with

struct DiffusersUNetConfig {
  std::int64_t sample_size = 0;  // 0: absent (null)
  std::int64_t in_channels = 3, out_channels = 3;
  double freq_shift = 0.0;
  bool flip_sin_to_cos = true;
  std::vector<std::string> down_block_types{"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"};
  std::vector<std::string> up_block_types{"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"};
  std::vector<std::int64_t> block_out_channels{224, 448, 672, 896};
  std::int64_t layers_per_block = 2;
  std::int64_t downsample_padding = 1;
  double dropout = 0.0;
  std::int64_t attention_head_dim = 8;  // 0: null (one head of the block's width)
  std::int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool add_attention = true;

  std::int64_t levels() const { return static_cast<std::int64_t>(block_out_channels.size()); }
  /// Whether level l (finest first) attends in the encoder and in the decoder.
  bool down_attends(std::int64_t l) const {
    return down_block_types.at(static_cast<std::size_t>(l)) == "AttnDownBlock2D";
  }
  bool up_attends(std::int64_t l) const {
    return up_block_types.at(static_cast<std::size_t>(levels() - 1 - l)) == "AttnUpBlock2D";
  }
  /// Heads of an attention block of `channels` channels.
  std::int64_t heads_at(std::int64_t channels) const {
    return attention_head_dim == 0 ? 1 : channels / attention_head_dim;
  }
};

namespace detail {

inline std::string unsupported(const std::string& key, const nlohmann::json& value, const std::string& supported) {
  return "key \"" + key + "\" = " + value.dump() + " is not supported; progdiff supports " + supported;
}

inline const nlohmann::json* present(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

inline std::int64_t integer_key(const nlohmann::json& j, const char* key, std::int64_t fallback, std::int64_t min) {
  const auto* v = present(j, key);
  if (!v) return fallback;
  const bool integral =
      v->is_number_integer() || (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>());
  if (!integral || v->get<double>() < static_cast<double>(min))
    throw ConfigError("key \"" + std::string(key) + "\" = " + v->dump() +
                      " must be an integer >= " + std::to_string(min));
  return static_cast<std::int64_t>(v->get<double>());
}

inline double number_key(const nlohmann::json& j, const char* key, double fallback) {
  const auto* v = present(j, key);
  if (!v) return fallback;
  if (!v->is_number()) throw ConfigError("key \"" + std::string(key) + "\" = " + v->dump() + " must be a number");
  return v->get<double>();
}

inline bool bool_key(const nlohmann::json& j, const char* key, bool fallback) {
  const auto* v = present(j, key);
  if (!v) return fallback;
  if (!v->is_boolean()) throw ConfigError("key \"" + std::string(key) + "\" = " + v->dump() + " must be true or false");
  return v->get<bool>();
}

inline std::vector<std::string> string_list_key(const nlohmann::json& j, const char* key,
                                                std::vector<std::string> fallback) {
  const auto* v = present(j, key);
  if (!v) return fallback;
  if (!v->is_array()) throw ConfigError("key \"" + std::string(key) + "\" = " + v->dump() + " must be a list");
  std::vector<std::string> out;
  for (const auto& e : *v) {
    if (!e.is_string()) throw ConfigError("key \"" + std::string(key) + "\" = " + v->dump() + " must list strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

// A key whose only supported value is `expected` (absent means diffusers' default `fallback`).
inline void require_value(const nlohmann::json& j, const char* key, const nlohmann::json& fallback,
                          const nlohmann::json& expected, const std::string& supported) {
  auto it = j.find(key);
  const nlohmann::json& v = it == j.end() ? fallback : *it;
  const bool same = v.is_number() && expected.is_number() ? v.get<double>() == expected.get<double>() : v == expected;
  if (!same) throw ConfigError(unsupported(key, v, supported));
}

}  // namespace detail

/// Reads a UNet2DModel config.json object; ConfigError (key, value, what is supported) for a
/// model progdiff cannot express whatever its U-Net type.
inline DiffusersUNetConfig parse_diffusers_unet_config(const nlohmann::json& j) {
  using namespace detail;
  if (!j.is_object()) throw ConfigError("expected a JSON object, got " + j.dump());
  if (auto it = j.find("_class_name"); it != j.end() && *it != "UNet2DModel")
    throw ConfigError(unsupported("_class_name", *it, "\"UNet2DModel\""));
  require_value(j, "time_embedding_type", "positional", "positional", "\"positional\" (sinusoidal timesteps)");
  require_value(j, "center_input_sample", false, false, "false");
  require_value(j, "act_fn", "silu", "silu", "\"silu\"");
  require_value(j, "resnet_time_scale_shift", "default", "default", "\"default\" (the embedding is added)");
  require_value(j, "downsample_type", "conv", "conv", "\"conv\"");
  require_value(j, "upsample_type", "conv", "conv", "\"conv\"");
  require_value(j, "mid_block_scale_factor", 1, 1, "1");
  require_value(j, "class_embed_type", nullptr, nullptr, "null (no class conditioning)");
  require_value(j, "num_class_embeds", nullptr, nullptr, "null (no class conditioning)");

  DiffusersUNetConfig c;
  if (const auto* s = present(j, "sample_size")) {
    if (s->is_array()) {
      if (s->size() != 2 || !(*s)[0].is_number_integer() || (*s)[0] != (*s)[1])
        throw ConfigError(unsupported("sample_size", *s, "square images (one integer, or [S, S])"));
      c.sample_size = (*s)[0].get<std::int64_t>();
    } else {
      c.sample_size = integer_key(j, "sample_size", 0, 1);
    }
  }
  c.in_channels = integer_key(j, "in_channels", c.in_channels, 1);
  c.out_channels = integer_key(j, "out_channels", c.out_channels, 1);
  c.freq_shift = number_key(j, "freq_shift", c.freq_shift);
  c.flip_sin_to_cos = bool_key(j, "flip_sin_to_cos", c.flip_sin_to_cos);
  c.down_block_types = string_list_key(j, "down_block_types", c.down_block_types);
  c.up_block_types = string_list_key(j, "up_block_types", c.up_block_types);
  if (const auto* b = present(j, "block_out_channels")) {
    if (!b->is_array() || b->empty())
      throw ConfigError("key \"block_out_channels\" = " + b->dump() + " must be a non-empty list");
    c.block_out_channels.clear();
    for (const auto& w : *b) {
      if (!w.is_number_integer() || w.get<std::int64_t>() < 1)
        throw ConfigError("key \"block_out_channels\" = " + b->dump() + " must list positive integers");
      c.block_out_channels.push_back(w.get<std::int64_t>());
    }
  }
  c.layers_per_block = integer_key(j, "layers_per_block", c.layers_per_block, 1);
  c.downsample_padding = integer_key(j, "downsample_padding", c.downsample_padding, 0);
  if (c.downsample_padding > 1)
    throw ConfigError(unsupported("downsample_padding", c.downsample_padding, "0 (DDPM's padding at the end) and 1"));
  c.dropout = number_key(j, "dropout", c.dropout);
  if (c.dropout < 0 || c.dropout >= 1)
    throw ConfigError("key \"dropout\" = " + std::to_string(c.dropout) + " must be in [0, 1)");
  {
    auto it = j.find("attention_head_dim");
    if (it != j.end()) c.attention_head_dim = it->is_null() ? 0 : integer_key(j, "attention_head_dim", 0, 1);
  }
  c.norm_num_groups = integer_key(j, "norm_num_groups", c.norm_num_groups, 1);
  if (const auto* g = present(j, "attn_norm_num_groups"); g && *g != c.norm_num_groups)
    throw ConfigError(unsupported("attn_norm_num_groups", *g,
                                  "null or the value of norm_num_groups (" + std::to_string(c.norm_num_groups) + ")"));
  c.norm_eps = number_key(j, "norm_eps", c.norm_eps);
  c.add_attention = bool_key(j, "add_attention", c.add_attention);

  for (const auto& t : c.down_block_types)
    if (t != "DownBlock2D" && t != "AttnDownBlock2D")
      throw ConfigError(unsupported("down_block_types", c.down_block_types, "\"DownBlock2D\" and \"AttnDownBlock2D\""));
  for (const auto& t : c.up_block_types)
    if (t != "UpBlock2D" && t != "AttnUpBlock2D")
      throw ConfigError(unsupported("up_block_types", c.up_block_types, "\"UpBlock2D\" and \"AttnUpBlock2D\""));
  if (c.down_block_types.size() != c.block_out_channels.size() ||
      c.up_block_types.size() != c.block_out_channels.size())
    throw ConfigError("keys \"down_block_types\" (" + std::to_string(c.down_block_types.size()) +
                      " blocks), \"up_block_types\" (" + std::to_string(c.up_block_types.size()) +
                      ") and \"block_out_channels\" (" + std::to_string(c.block_out_channels.size()) +
                      ") must have one entry per level");
  return c;
}

/// The config.json diffusers writes for `c` (every key UNet2DModel takes, so nothing falls
/// back to a default that a later diffusers version might change).
inline nlohmann::json to_json(const DiffusersUNetConfig& c) {
  nlohmann::json j;
  j["_class_name"] = "UNet2DModel";
  j["_diffusers_version"] = kDiffusersVersion;
  j["sample_size"] = c.sample_size;
  j["in_channels"] = c.in_channels;
  j["out_channels"] = c.out_channels;
  j["center_input_sample"] = false;
  j["time_embedding_type"] = "positional";
  if (std::floor(c.freq_shift) == c.freq_shift)
    j["freq_shift"] = static_cast<std::int64_t>(c.freq_shift);
  else
    j["freq_shift"] = c.freq_shift;
  j["flip_sin_to_cos"] = c.flip_sin_to_cos;
  j["down_block_types"] = c.down_block_types;
  j["up_block_types"] = c.up_block_types;
  j["block_out_channels"] = c.block_out_channels;
  j["layers_per_block"] = c.layers_per_block;
  j["mid_block_scale_factor"] = 1;
  j["downsample_padding"] = c.downsample_padding;
  j["downsample_type"] = "conv";
  j["upsample_type"] = "conv";
  j["dropout"] = c.dropout;
  j["act_fn"] = "silu";
  j["attention_head_dim"] = c.attention_head_dim == 0 ? nlohmann::json(nullptr) : nlohmann::json(c.attention_head_dim);
  j["norm_num_groups"] = c.norm_num_groups;
  j["attn_norm_num_groups"] = nullptr;
  j["norm_eps"] = c.norm_eps;
  j["resnet_time_scale_shift"] = "default";
  j["add_attention"] = c.add_attention;
  j["class_embed_type"] = nullptr;
  j["num_class_embeds"] = nullptr;
  j["num_train_timesteps"] = nullptr;
  return j;
}

/// Reads and parses a config.json; every error names the file.
inline DiffusersUNetConfig read_diffusers_unet_config(const std::filesystem::path& path) {
  const nlohmann::json j = read_json_file(path);
  try {
    return parse_diffusers_unet_config(j);
  } catch (const ConfigError& e) {
    throw ConfigError(path.string() + ": " + e.what());
  }
}

}  // namespace progdiff::interop

#pragma once
// Where each progdiff U-Net parameter lives in a UNet2DModel state dict, and how its layout
// differs:
//   * names: down.<l>.res.<j> -> down_blocks.<l>.resnets.<j>, up.<l>.* -> up_blocks.<L-1-l>.*
//     (diffusers counts up blocks from the coarsest), temb_proj -> time_emb_proj, skip ->
//     conv_shortcut, GroupNorm gamma/beta -> weight/bias, norm_out -> conv_norm_out;
//   * attention: progdiff's qkv is one 1x1 convolution [3C, C, 1, 1] whose rows are q, k, v;
//     diffusers has three Linear layers to_q, to_k, to_v [C, C] (heads split the channels the
//     same way: head h owns channels h*d .. (h+1)*d - 1), and proj [C, C, 1, 1] is to_out.0 [C, C];
//   * the time embedding's first Linear: diffusers' sinusoid is [cos | sin] when
//     flip_sin_to_cos, progdiff's is always [sin | cos], so linear_1's input columns swap halves.
// Checkpoints written before diffusers 0.14 name attention query, key, value and proj_attn; the
// importer accepts those names too.
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::interop {

enum class DiffusersLayout {
  Same,             // same elements, same shape
  Linear1x1,        // progdiff [C, C, 1, 1] is diffusers [C, C]
  SplitQkv,         // progdiff [3C, ...] is three diffusers tensors of C rows (to_q, to_k, to_v)
  FlippedSinusoid,  // linear_1.weight with its input columns' halves swapped
};

struct DiffusersTensorMap {
  std::string progdiff;
  DiffusersLayout layout = DiffusersLayout::Same;
  std::vector<std::string> diffusers;  // one name, or three for SplitQkv
};

namespace detail {

inline std::vector<std::string> split_name(const std::string& name) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = name.find('.', start)) != std::string::npos; start = dot + 1)
    parts.push_back(name.substr(start, dot - start));
  parts.push_back(name.substr(start));
  return parts;
}

inline std::string join_from(const std::vector<std::string>& parts, std::size_t first) {
  std::string s;
  for (std::size_t i = first; i < parts.size(); ++i) s += (i > first ? "." : "") + parts[i];
  return s;
}

// The leaf of a GroupNorm, Conv2d or Linear parameter inside a ResBlock.
inline std::string resnet_leaf(const std::string& leaf) {
  auto parts = split_name(leaf);
  if (parts.size() != 2) return "";
  std::string& layer = parts[0];
  std::string& p = parts[1];
  if (layer == "temb_proj") layer = "time_emb_proj";
  if (layer == "skip") layer = "conv_shortcut";
  if (p == "gamma") p = "weight";
  if (p == "beta") p = "bias";
  return layer + "." + p;
}

}  // namespace detail

/// The diffusers tensors of progdiff parameter `name` of a U-Net with `levels` levels; `flip`
/// is the config's flip_sin_to_cos. ConfigError for a name that is no U-Net parameter.
inline DiffusersTensorMap diffusers_tensor_map(const std::string& name, std::int64_t levels, bool flip) {
  using detail::split_name;
  const auto parts = split_name(name);
  const auto fail = [&]() -> DiffusersTensorMap {
    throw ConfigError("diffusers names: progdiff parameter '" + name + "' has no UNet2DModel counterpart");
  };
  DiffusersTensorMap m{name, DiffusersLayout::Same, {}};
  std::string block;        // the diffusers prefix of the block
  std::size_t leaf_at = 0;  // first part of the layer inside the block
  enum { Plain, Resnet, Attention } kind = Plain;
  if (parts.size() < 2) return fail();
  if (parts[0] == "temb") {
    m.diffusers = {"time_embedding." + detail::join_from(parts, 1)};
    if (flip && name == "temb.linear_1.weight") m.layout = DiffusersLayout::FlippedSinusoid;
    return m;
  }
  if (parts[0] == "conv_in" || parts[0] == "conv_out") {
    m.diffusers = {name};
    return m;
  }
  if (parts[0] == "norm_out") {
    m.diffusers = {std::string("conv_norm_out.") + (parts[1] == "gamma" ? "weight" : "bias")};
    return m;
  }
  if ((parts[0] == "down" || parts[0] == "up") && parts.size() >= 4) {
    const std::int64_t l = std::stoll(parts[1]);
    const std::string index = parts[0] == "down" ? std::to_string(l) : std::to_string(levels - 1 - l);
    const std::string blocks = parts[0] == "down" ? "down_blocks." : "up_blocks.";
    if (parts[2] == "res" && parts.size() >= 5) {
      block = blocks + index + ".resnets." + parts[3] + ".", leaf_at = 4, kind = Resnet;
    } else if (parts[2] == "attn" && parts.size() >= 5) {
      block = blocks + index + ".attentions." + parts[3] + ".", leaf_at = 4, kind = Attention;
    } else if (parts[2] == "downsample" || parts[2] == "upsample") {
      block = blocks + index + (parts[2] == "downsample" ? ".downsamplers.0." : ".upsamplers.0."), leaf_at = 3;
    } else {
      return fail();
    }
  } else if (parts[0] == "mid" && parts.size() >= 4 && parts[1] == "res") {
    block = "mid_block.resnets." + parts[2] + ".", leaf_at = 3, kind = Resnet;
  } else if (parts[0] == "mid" && parts[1] == "attn") {
    block = "mid_block.attentions.0.", leaf_at = 2, kind = Attention;
  } else {
    return fail();
  }
  const std::string leaf = detail::join_from(parts, leaf_at);
  if (kind == Resnet) {
    const std::string mapped = detail::resnet_leaf(leaf);
    if (mapped.empty()) return fail();
    m.diffusers = {block + mapped};
  } else if (kind == Attention) {
    if (leaf == "norm.gamma" || leaf == "norm.beta") {
      m.diffusers = {block + (leaf == "norm.gamma" ? "group_norm.weight" : "group_norm.bias")};
    } else if (leaf == "qkv.weight" || leaf == "qkv.bias") {
      const std::string p = leaf == "qkv.weight" ? "weight" : "bias";
      m.layout = DiffusersLayout::SplitQkv;
      m.diffusers = {block + "to_q." + p, block + "to_k." + p, block + "to_v." + p};
    } else if (leaf == "proj.weight" || leaf == "proj.bias") {
      m.layout = leaf == "proj.weight" ? DiffusersLayout::Linear1x1 : DiffusersLayout::Same;
      m.diffusers = {block + "to_out.0." + (leaf == "proj.weight" ? "weight" : "bias")};
    } else {
      return fail();
    }
  } else {
    m.diffusers = {block + leaf};
  }
  return m;
}

/// The name the same tensor had in checkpoints written before diffusers 0.14 (query, key,
/// value, proj_attn), or "" when it had no other.
inline std::string legacy_diffusers_name(const std::string& name) {
  static const std::pair<const char*, const char*> renames[] = {
      {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
  for (const auto& [now, before] : renames) {
    const auto at = name.find(now);
    if (at != std::string::npos) return name.substr(0, at) + before + name.substr(at + std::string(now).size());
  }
  return "";
}

/// Swaps the two halves of each row's first 2 * (cols / 2) columns of a row-major [rows, cols]
/// matrix: the map between [sin | cos] and [cos | sin] inputs (its own inverse; an odd last
/// column, the zero padding of both, stays).
template <class T>
void swap_sinusoid_halves(std::vector<T>& m, std::int64_t rows, std::int64_t cols) {
  const std::int64_t half = cols / 2;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < half; ++i)
      std::swap(m[static_cast<std::size_t>(r * cols + i)], m[static_cast<std::size_t>(r * cols + half + i)]);
}

}  // namespace progdiff::interop

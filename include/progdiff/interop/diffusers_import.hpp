#pragma once
// Importing a diffusers UNet2DModel folder (config.json + diffusion_pytorch_model.safetensors,
// as save_pretrained writes it, or a pipeline folder with unet/ and scheduler/) into a progdiff
// U-Net whose type the caller chooses:
//
//   using Net = unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>,
//                          unet::BaseChannels<128>>;
//   auto imported = interop::import_diffusers_unet<Net>("ddpm-cifar10-32");
//   imported.net.forward(x, t);   // the same function as UNet2DModel(x, t).sample
//
// The config is checked against the type first (every mismatch listed), then each tensor by
// name and shape; a missing tensor, a shape that differs and a tensor the model has no place
// for are errors naming the file and the key.
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/core/json_file.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/interop/diffusers_config.hpp"
#include "progdiff/interop/diffusers_names.hpp"
#include "progdiff/interop/diffusers_structure.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/schedule/runtime_schedule.hpp"

namespace progdiff::interop {

inline constexpr const char* kDiffusersWeights = "diffusion_pytorch_model.safetensors";

template <class Net>
struct ImportedUNet {
  Net net;
  DiffusersUNetConfig config;
  std::filesystem::path folder;                // the folder that holds config.json
  std::optional<schedule::Schedule> schedule;  // from a pipeline folder's scheduler/scheduler_config.json
};

/// The folder holding the UNet2DModel: `dir` itself, or `dir`/unet for a pipeline folder.
inline std::filesystem::path diffusers_unet_folder(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "config.json")) return dir;
  if (std::filesystem::exists(dir / "unet" / "config.json")) return dir / "unet";
  throw IoError((dir / "config.json").string() +
                ": missing (neither a UNet2DModel folder nor a pipeline folder "
                "with unet/config.json)");
}

namespace detail {

inline std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string t = "[";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// The diffusers shape of progdiff parameter shape `p` under `layout`.
inline std::vector<std::int64_t> diffusers_shape(const Shape& p, DiffusersLayout layout) {
  std::vector<std::int64_t> s(p.begin(), p.end());
  if (layout == DiffusersLayout::Linear1x1) s.resize(2);
  if (layout == DiffusersLayout::SplitQkv) {
    s[0] /= 3;
    if (s.size() == 4) s.resize(2);
  }
  return s;
}

}  // namespace detail

/// Fills every parameter of `net` from the safetensors file at `path`, laid out as config `c`
/// describes (flip_sin_to_cos). Errors name the file and the key.
template <class Net>
void load_diffusers_weights(Net& net, const DiffusersUNetConfig& c, const std::filesystem::path& path) {
  using T = typename Net::value_type;
  using B = typename Net::backend_type;
  if (!std::filesystem::exists(path)) {
    std::string hint;
    if (std::filesystem::exists(path.parent_path() / "diffusion_pytorch_model.bin"))
      hint =
          " (the folder has diffusion_pytorch_model.bin: pickled weights are not read; save the model with "
          "save_pretrained(..., safe_serialization=True))";
    throw IoError(path.string() + ": missing" + hint);
  }
  const io::SafetensorsFile file = io::read_safetensors(path);
  std::set<std::string> used;
  net.visit_parameters(
      [&](const std::string& name, auto& param) {
        const DiffusersTensorMap m = diffusers_tensor_map(name, c.levels(), c.flip_sin_to_cos);
        const std::vector<std::int64_t> want = detail::diffusers_shape(param.value.shape(), m.layout);
        std::vector<T> values;
        for (const std::string& key : m.diffusers) {
          std::string found = key;
          if (!file.contains(found)) {
            const std::string legacy = legacy_diffusers_name(key);
            if (legacy.empty() || !file.contains(legacy))
              throw FormatError(path.string() + ": no tensor '" + key + "' (progdiff parameter '" + name +
                                "'); the config.json next to it describes a model that has one");
            found = legacy;
          }
          const io::TensorRecord& r = file.at(found);
          if (r.shape != want)
            throw ShapeError(path.string() + ": tensor '" + found + "' has shape " + detail::shape_text(r.shape) +
                             ", but config.json gives progdiff parameter '" + name + "' the shape " +
                             detail::shape_text(want));
          const std::vector<T> part = file.values<T>(found);
          values.insert(values.end(), part.begin(), part.end());
          used.insert(found);
        }
        if (m.layout == DiffusersLayout::FlippedSinusoid)
          swap_sinusoid_halves(values, param.value.dim(0), param.value.dim(1));
        param.value = Tensor<T, B>::from_host(param.value.shape(), values);
      },
      "");
  std::vector<std::string> extra;
  for (const auto& [key, record] : file.tensors)
    if (!used.count(key)) extra.push_back(key);
  if (!extra.empty()) {
    std::string list;
    for (std::size_t i = 0; i < extra.size() && i < 8; ++i) list += (i ? ", '" : "'") + extra[i] + "'";
    if (extra.size() > 8) list += ", ... (" + std::to_string(extra.size()) + " in all)";
    throw FormatError(path.string() + ": tensor" + (extra.size() > 1 ? "s " : " ") + list +
                      " not part of the model that config.json describes (a different model, or a config.json "
                      "of another model?)");
  }
}

/// Refuses a pipeline whose scheduler reads the net's outputs otherwise than the net's type
/// predicts them: a LearnedVariance net (2C outputs) needs variance_type "learned_range", which
/// interpolates as IDDPM does ("learned" takes a log-variance, which progdiff's nets do not
/// predict); a net of C outputs needs a fixed variance type.
template <class Net>
void check_variance_type(const std::filesystem::path& scheduler) {
  const nlohmann::json j = read_json_file(scheduler, "scheduler config");
  const std::string type = j.contains("variance_type") && j["variance_type"].is_string()
                               ? j["variance_type"].get<std::string>()
                               : std::string("fixed_small");  // diffusers' default
  const bool learned = type == "learned" || type == "learned_range";
  if (Net::spec::learned_variance && type != "learned_range")
    throw ConfigError(scheduler.string() + ": key \"variance_type\" is \"" + type +
                      "\", but the type has LearnedVariance, whose 2C outputs diffusers reads with \"learned_range\"");
  if (!Net::spec::learned_variance && learned)
    throw ConfigError(scheduler.string() + ": key \"variance_type\" is \"" + type +
                      "\", which needs 2C outputs: give the type unet::LearnedVariance");
}

/// Imports the UNet2DModel of `dir` (or of `dir`/unet, with `dir`/scheduler/scheduler_config.json
/// when present) as a `Net`. ConfigError listing every mismatch when the config does not fit
/// the type; IoError / FormatError / ShapeError naming the file and key for the rest.
template <class Net>
ImportedUNet<Net> import_diffusers_unet(const std::filesystem::path& dir) {
  check_diffusers_expressible<Net>();
  const std::filesystem::path folder = diffusers_unet_folder(dir);
  const std::filesystem::path config_path = folder / "config.json";
  const DiffusersUNetConfig config = read_diffusers_unet_config(config_path);
  check_diffusers_structure<Net>(config, config_path.string());
  auto build = [&] {
    try {
      return Net(widths_from_diffusers<Net>(config), unet_config_from_diffusers<Net>(config));
    } catch (const ConfigError& e) {
      throw ConfigError(config_path.string() + ": " + e.what());
    }
  };
  ImportedUNet<Net> out{build(), config, folder, std::nullopt};
  load_diffusers_weights(out.net, out.config, folder / kDiffusersWeights);
  const std::filesystem::path scheduler = folder.parent_path() / "scheduler" / "scheduler_config.json";
  if (folder.filename() == "unet" && std::filesystem::exists(scheduler)) {
    check_variance_type<Net>(scheduler);
    out.schedule = schedule::Schedule::from_file(scheduler.string());
  }
  out.net.set_training(false);
  return out;
}

}  // namespace progdiff::interop

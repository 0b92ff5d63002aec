#pragma once
// A progressive model with one copy of the U-Net per timestep group (stage 2 without pruning)
// as diffusers folders: group_<k>/ is a UNet2DModel folder, and progressive.json records which
// timesteps each serves, so a Python user routes timestep t to the folder whose
// [begin, end) holds it:
//
//   {"format": "progdiff-progressive", "format_version": 1, "num_train_timesteps": 1000,
//    "prediction_type": "epsilon",
//    "groups": [{"folder": "group_0", "begin": 0, "end": 412}, {"folder": "group_1", ...}]}
//
// import_diffusers_progressive reads the same layout back into a model::Progressive.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/json_file.hpp"
#include "progdiff/interop/diffusers_export.hpp"
#include "progdiff/interop/diffusers_import.hpp"
#include "progdiff/model/progressive.hpp"

namespace progdiff::interop {

inline constexpr const char* kProgressiveManifest = "progressive.json";

/// Writes every group's U-Net as `dir`/group_<k> and the manifest; with a schedule, also
/// `dir`/scheduler/scheduler_config.json. ConfigError naming the group when one cannot be
/// expressed (a pruned group: export is for copies of uniform width).
template <class Net>
void export_diffusers_progressive(model::Progressive<Net>& model, const std::filesystem::path& dir,
                                  const schedule::ScheduleConfig* schedule = nullptr) {
  for (std::int64_t k = 0; k < model.group_count(); ++k) {  // refuse before writing anything
    try {
      diffusers_config_of(model.denoiser(k));
    } catch (const ConfigError& e) {
      throw ConfigError("group " + std::to_string(k) + ": " + e.what());
    }
  }
  nlohmann::json manifest;
  manifest["format"] = "progdiff-progressive";
  manifest["format_version"] = 1;
  manifest["num_train_timesteps"] = model.partition().size();
  const auto p = model.prediction_type();
  manifest["prediction_type"] = p == schedule::PredictionType::Epsilon  ? "epsilon"
                                : p == schedule::PredictionType::Sample ? "sample"
                                                                        : "v_prediction";
  manifest["groups"] = nlohmann::json::array();
  for (std::int64_t k = 0; k < model.group_count(); ++k) {
    const std::string folder = "group_" + std::to_string(k);
    export_diffusers_unet(model.denoiser(k), dir / folder);
    manifest["groups"].push_back(
        {{"folder", folder}, {"begin", model.partition().begin(k)}, {"end", model.partition().end(k)}});
  }
  if (schedule) write_json_file(dir / "scheduler" / "scheduler_config.json", diffusers_scheduler_config(*schedule));
  write_json_file(dir / kProgressiveManifest, manifest);  // last: a folder with a manifest is complete
}

/// Reads a folder written by export_diffusers_progressive; errors name the manifest and key.
template <class Net>
model::Progressive<Net> import_diffusers_progressive(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / kProgressiveManifest;
  const nlohmann::json m = read_json_file(path);
  const auto fail = [&](const std::string& what) -> model::Progressive<Net> {
    throw FormatError(path.string() + ": " + what);
  };
  if (!m.is_object() || m.value("format", "") != "progdiff-progressive")
    return fail("key \"format\" is not \"progdiff-progressive\"");
  if (m.value("format_version", 0) != 1) return fail("key \"format_version\" is not 1");
  if (!m.contains("groups") || !m["groups"].is_array() || m["groups"].empty())
    return fail("key \"groups\" must be a non-empty list");
  group::Partition partition;
  std::vector<Net> nets;
  for (std::size_t k = 0; k < m["groups"].size(); ++k) {
    const auto& g = m["groups"][k];
    const std::string key = "groups[" + std::to_string(k) + "]";
    if (!g.is_object() || !g.contains("folder") || !g["folder"].is_string() || !g.contains("begin") ||
        !g["begin"].is_number_integer() || !g.contains("end") || !g["end"].is_number_integer())
      return fail("key \"" + key + "\" needs a string \"folder\" and integers \"begin\", \"end\"");
    const auto begin = g["begin"].get<std::int64_t>();
    if (k == 0 ? begin != 0 : begin != partition.starts.back())
      return fail("key \"" + key + ".begin\" = " + std::to_string(begin) + " does not continue the previous group");
    if (k == 0) partition.starts.push_back(0);
    partition.starts.push_back(g["end"].get<std::int64_t>());
    nets.push_back(import_diffusers_unet<Net>(dir / g["folder"].get<std::string>()).net);
  }
  const std::string pred = m.value("prediction_type", "epsilon");
  const auto prediction = pred == "sample"         ? schedule::PredictionType::Sample
                          : pred == "v_prediction" ? schedule::PredictionType::VPrediction
                                                   : schedule::PredictionType::Epsilon;
  try {
    return model::Progressive<Net>(std::move(partition), std::move(nets), prediction);
  } catch (const ConfigError& e) {
    throw FormatError(path.string() + ": " + e.what());
  }
}

}  // namespace progdiff::interop

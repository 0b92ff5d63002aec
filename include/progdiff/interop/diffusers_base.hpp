#pragma once
// A diffusers UNet2DModel as the stage-1 base of stage 2 (train/stage2.hpp) or TDC
// (tdc/pipeline.hpp): a model trained elsewhere, pruned and fine-tuned per timestep group
// here.
//
//   Schedule schedule;  // the schedule stage 2 trains with
//   auto imported = interop::import_diffusers_base<Net>("ddpm-cifar10-32", schedule);
//   tdc::run_tdc(imported.base, partition, schedule, train, validation, options);
//
// The base is a one-group model::Progressive holding exactly the folder's weights. Stage 2 must
// train with the noise schedule the model was trained with: when the folder is a pipeline with
// scheduler/scheduler_config.json, its timesteps, prediction type and alphas_cumprod are checked
// against the schedule given, and a difference is a ConfigError naming the file, the key, its
// value and the schedule stage 2 uses. A bare UNet2DModel folder says nothing of its schedule;
// `schedule_checked` is then false and the caller says so.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

#include "progdiff/core/error.hpp"
#include "progdiff/core/json_file.hpp"
#include "progdiff/interop/diffusers_import.hpp"
#include "progdiff/model/description.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/schedule/noise_schedule.hpp"
#include "progdiff/schedule/prediction_type.hpp"
#include "progdiff/schedule/runtime_schedule.hpp"

namespace progdiff::interop {

/// An imported UNet2DModel ready to be stage 2's base.
template <class Net>
struct DiffusersBase {
  model::Progressive<Net> base;  // one group over every training timestep
  DiffusersUNetConfig config;
  std::filesystem::path folder;   // the folder that holds config.json
  bool schedule_checked = false;  // a pipeline's scheduler was found and matched the schedule
};

/// The schedule `s` in words, for messages: "linear betas 0.0001 .. 0.02 over 1000 timesteps".
template <schedule::NoiseSchedule S>
std::string schedule_summary(const S& s) {
  std::string text;
  if constexpr (requires {
                  S::kind;
                  s.settings().beta_start;
                }) {
    text = std::string(schedule::beta_kind_name(S::kind)) + " betas " + model::exact(s.settings().beta_start) + " .. " +
           model::exact(s.settings().beta_end) + " over ";
  } else {
    text = "a schedule of ";
  }
  return text + std::to_string(static_cast<std::int64_t>(s.size())) + " timesteps";
}

/// Checks that `scheduler` (read from `source`, a scheduler_config.json) is the schedule `s`
/// stage 2 trains with, predicting `prediction`: the same number of timesteps, prediction type
/// and alphas_cumprod (relative difference at most 1e-6: diffusers computes in float32).
/// ConfigError naming the file, the key, its value and what stage 2 uses.
template <schedule::NoiseSchedule S>
void check_base_schedule(const schedule::Schedule& scheduler, const std::filesystem::path& source, const S& s,
                         schedule::PredictionType prediction) {
  const nlohmann::json j = read_json_file(source);
  const auto value = [&](const char* key) { return j.contains(key) ? j[key].dump() : std::string("absent"); };
  const std::string uses = "; stage 2 trains with " + schedule_summary(s) + ", predicting " +
                           model::prediction_label(prediction) +
                           " (the base must have been trained with the schedule stage 2 uses)";
  const auto steps = static_cast<std::int64_t>(s.size());
  if (static_cast<std::int64_t>(scheduler.size()) != steps)
    throw ConfigError(source.string() + ": key \"num_train_timesteps\" = " + value("num_train_timesteps") + uses);
  if (scheduler.config().prediction_type != prediction)
    throw ConfigError(source.string() + ": key \"prediction_type\" = " + value("prediction_type") + uses);
  double worst = 0.0;
  std::int64_t at = 0;
  for (std::int64_t i = 0; i < steps; ++i) {
    const double d = std::abs(scheduler.alpha_bar(i) - s.alpha_bar(i)) / s.alpha_bar(i);
    if (d > worst) worst = d, at = i;
  }
  if (worst > 1e-6)
    throw ConfigError(source.string() + ": key \"beta_schedule\" = " + value("beta_schedule") + " (beta_start " +
                      value("beta_start") + ", beta_end " + value("beta_end") + ") gives alphas_cumprod " +
                      model::exact(scheduler.alpha_bar(at)) + " at timestep " + std::to_string(at) +
                      " where stage 2's schedule has " + model::exact(s.alpha_bar(at)) + uses);
}

/// The one-group model stage 2 starts from: `net` serving all `timesteps` training timesteps.
template <class Net>
model::Progressive<Net> diffusers_stage1_base(Net net, std::int64_t timesteps,
                                              schedule::PredictionType prediction = schedule::PredictionType::Epsilon) {
  return model::Progressive<Net>(std::move(net), timesteps, prediction);
}

/// Imports the UNet2DModel of `dir` (a model folder, or a pipeline folder whose scheduler is
/// then checked against `s`, see check_base_schedule) as the stage-1 base of stage 2 on `s`.
/// Errors are import_diffusers_unet's (every mismatch with the type listed; missing or
/// mis-shaped tensors named with their file) and check_base_schedule's.
template <class Net, schedule::NoiseSchedule S>
DiffusersBase<Net> import_diffusers_base(const std::filesystem::path& dir, const S& s,
                                         schedule::PredictionType prediction = schedule::PredictionType::Epsilon) {
  ImportedUNet<Net> imported = import_diffusers_unet<Net>(dir);
  bool checked = false;
  if (imported.schedule) {
    check_base_schedule(*imported.schedule, imported.folder.parent_path() / "scheduler" / "scheduler_config.json", s,
                        prediction);
    checked = true;
  }
  return DiffusersBase<Net>{
      diffusers_stage1_base(std::move(imported.net), static_cast<std::int64_t>(s.size()), prediction),
      std::move(imported.config), std::move(imported.folder), checked};
}

}  // namespace progdiff::interop

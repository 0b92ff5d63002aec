#pragma once
// scheduler_config.json for the progdiff schedules that diffusers' DDPM-family schedulers
// (DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, ...) can hold: a beta table of
// kind linear, scaled_linear, squaredcos_cap_v2 (IDDPM cosine with offset 0.008 and beta
// clipped at 0.999, the constants diffusers has fixed) or an explicit trained_betas list.
// Schedule::from_file reads such a file back. The continuous kinds (VP, VE, EDM) have no beta
// table and are refused with the reason.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/io/atomic_file.hpp"
#include "progdiff/schedule/runtime_schedule.hpp"

namespace progdiff::interop {

/// The scheduler_config.json of `c` for diffusers' `class_name`; ConfigError with the reason
/// for a schedule diffusers cannot express.
inline nlohmann::json diffusers_scheduler_config(const schedule::ScheduleConfig& c,
                                                 const std::string& class_name = "DDPMScheduler") {
  using schedule::ScheduleKind;
  const auto refuse = [](const std::string& why) -> nlohmann::json {
    throw ConfigError("scheduler_config.json: " + why);
  };
  nlohmann::json j;
  j["_class_name"] = class_name;
  j["_diffusers_version"] = "0.27.2";
  j["num_train_timesteps"] = c.num_train_timesteps;
  j["beta_start"] = c.betas.beta_start;
  j["beta_end"] = c.betas.beta_end;
  j["trained_betas"] = nullptr;
  switch (c.kind) {
    case ScheduleKind::Linear:
      j["beta_schedule"] = "linear";
      break;
    case ScheduleKind::ScaledLinear:
      j["beta_schedule"] = "scaled_linear";
      break;
    case ScheduleKind::Cosine:
      if (c.betas.cosine_offset != 0.008 || c.betas.max_beta != 0.999)
        return refuse("a cosine schedule with offset " + std::to_string(c.betas.cosine_offset) + " and beta clip " +
                      std::to_string(c.betas.max_beta) +
                      " is not expressible: diffusers' squaredcos_cap_v2 fixes them at 0.008 and 0.999 (write the "
                      "betas as a Trained schedule instead)");
      j["beta_schedule"] = "squaredcos_cap_v2";
      break;
    case ScheduleKind::Trained:
      j["beta_schedule"] = "linear";  // ignored by diffusers when trained_betas is set
      j["trained_betas"] = c.trained_betas;
      break;
    case ScheduleKind::VP:
    case ScheduleKind::VE:
    case ScheduleKind::EDM:
      return refuse(std::string("the ") +
                    (c.kind == ScheduleKind::VP   ? "vp"
                     : c.kind == ScheduleKind::VE ? "ve"
                                                  : "edm") +
                    " schedule is continuous-time and has no beta table; diffusers' DDPM-family schedulers hold "
                    "linear, scaled_linear, squaredcos_cap_v2 or trained_betas");
  }
  j["prediction_type"] = c.prediction_type == schedule::PredictionType::Epsilon  ? "epsilon"
                         : c.prediction_type == schedule::PredictionType::Sample ? "sample"
                                                                                 : "v_prediction";
  j["timestep_spacing"] = schedule::spacing_name(c.timestep_spacing);
  j["steps_offset"] = c.steps_offset;
  j["variance_type"] = "fixed_small";
  j["clip_sample"] = false;  // progdiff's samplers do not clip x0
  j["thresholding"] = false;
  return j;
}

/// The config of a typed discrete schedule (schedule::Linear<1000>, Cosine<4000>, ...).
template <class S>
requires requires(const S& s) {
  S::kind;
  s.settings();
  s.size();
}
nlohmann::json diffusers_scheduler_config(const S& s, const std::string& class_name = "DDPMScheduler") {
  schedule::ScheduleConfig c;
  c.kind = S::kind == schedule::BetaKind::Linear         ? schedule::ScheduleKind::Linear
           : S::kind == schedule::BetaKind::ScaledLinear ? schedule::ScheduleKind::ScaledLinear
                                                         : schedule::ScheduleKind::Cosine;
  c.num_train_timesteps = static_cast<std::int64_t>(s.size());
  c.betas = s.settings();
  return diffusers_scheduler_config(c, class_name);
}

/// Writes `config` (a diffusers_scheduler_config result) to `path` atomically.
inline void write_json_file(const std::filesystem::path& path, const nlohmann::json& config) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  const std::string text = config.dump(2) + "\n";
  io::write_file_atomic(path, std::as_bytes(std::span(text)));
}

}  // namespace progdiff::interop

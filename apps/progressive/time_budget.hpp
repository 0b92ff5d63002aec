#pragma once
// --minutes: a wall-time budget turned into step counts once, from a training rate measured on
// the running machine, and recorded in the output directory (time_budget.json), so that a
// resumed run trains the same steps and a repeat elsewhere can name them (--steps,
// --stage2-steps). Plain numbers only: the measurement itself is in job_steps.hpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/core/json_file.hpp"
#include "progdiff/io/atomic_file.hpp"

namespace job {

/// What --minutes decided, and from what.
struct TimeBudgetPlan {
  double minutes = 0.0;
  double flops_per_second = 0.0;    // measured: training FLOPs per second of stage-1 steps
  double evaluation_seconds = 0.0;  // estimated: the evaluation's forward passes at that rate
  double measuring_seconds = 0.0;   // what measuring the rate took (spent from the budget)
  double scale = 1.0;               // applied to the stage-1 and stage-2 step counts
  std::int64_t steps = 0;
  std::int64_t stage2_steps = 0;
  std::string cpu;  // the processor the rate was measured on
};

/// "0.5", "10": a budget as the flag gives it.
inline std::string minutes_text(double minutes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", minutes);
  return buf;
}

/// The factor on the step counts whose training (`training_flops` at factor 1) and evaluation
/// (`evaluation_flops`) take what `spent_seconds` leave of `minutes` at `flops_per_second`.
/// ConfigError when the evaluation alone fills the budget.
inline double time_budget_scale(double minutes, double flops_per_second, double training_flops, double evaluation_flops,
                                double spent_seconds = 0.0) {
  if (!(minutes > 0.0) || !(flops_per_second > 0.0) || !(training_flops > 0.0) || !(evaluation_flops >= 0.0) ||
      !(spent_seconds >= 0.0))
    throw progdiff::ConfigError("--minutes: the budget, the measured rate and the training FLOPs must be positive");
  const double left = minutes * 60.0 - spent_seconds - evaluation_flops / flops_per_second;
  if (left <= 0.0)
    throw progdiff::ConfigError("--minutes " + minutes_text(minutes) + ": the evaluation alone is estimated at " +
                                minutes_text(evaluation_flops / flops_per_second / 60.0) +
                                " minutes on this machine; give more minutes or fewer --fid-samples / --nll-images");
  return left * flops_per_second / training_flops;
}

/// The plan for `minutes`, `measuring_seconds` of which went to measuring the rate, from the
/// configuration's step counts (the copies' plan: `steps` and `stage2_steps`, whose training
/// costs `training_flops`), scaled by time_budget_scale.
inline TimeBudgetPlan plan_time_budget(double minutes, double flops_per_second, double measuring_seconds,
                                       double training_flops, double evaluation_flops, std::int64_t steps,
                                       std::int64_t stage2_steps, std::string cpu) {
  TimeBudgetPlan p;
  p.minutes = minutes;
  p.flops_per_second = flops_per_second;
  p.evaluation_seconds = evaluation_flops / flops_per_second;
  p.measuring_seconds = measuring_seconds;
  p.scale = time_budget_scale(minutes, flops_per_second, training_flops, evaluation_flops, measuring_seconds);
  p.steps = std::max<std::int64_t>(1, std::llround(static_cast<double>(steps) * p.scale));
  p.stage2_steps = std::llround(static_cast<double>(stage2_steps) * p.scale);
  p.cpu = std::move(cpu);
  return p;
}

/// The processor's name as /proc/cpuinfo gives it ("unknown" elsewhere).
inline std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

inline nlohmann::json to_json(const TimeBudgetPlan& p) {
  return {{"format", "progdiff.time_budget"},
          {"version", 1},
          {"minutes", p.minutes},
          {"flops_per_second", p.flops_per_second},
          {"evaluation_seconds", p.evaluation_seconds},
          {"measuring_seconds", p.measuring_seconds},
          {"scale", p.scale},
          {"steps", p.steps},
          {"stage2_steps", p.stage2_steps},
          {"cpu", p.cpu}};
}

/// Writes the plan atomically: a killed run leaves the whole file or none.
inline void write_time_budget(const std::filesystem::path& path, const TimeBudgetPlan& p) {
  const std::string text = to_json(p).dump(2) + "\n";
  progdiff::io::write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
}

/// The plan recorded at `path`, or nothing when there is none; FormatError names the file and
/// the field when it is not a plan.
inline std::optional<TimeBudgetPlan> read_time_budget(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  const nlohmann::json j = progdiff::read_json_file(path, "time budget plan");
  if (!j.is_object() || j.value("format", std::string()) != "progdiff.time_budget")
    throw progdiff::FormatError(path.string() + ": not a time budget plan (format progdiff.time_budget)");
  TimeBudgetPlan p;
  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!j.contains(name)) throw progdiff::FormatError(path.string() + ": the field \"" + name + "\" is missing");
    return j.at(name);
  };
  try {
    p.minutes = field("minutes").get<double>();
    p.flops_per_second = field("flops_per_second").get<double>();
    p.evaluation_seconds = field("evaluation_seconds").get<double>();
    p.measuring_seconds = field("measuring_seconds").get<double>();
    p.scale = field("scale").get<double>();
    p.steps = field("steps").get<std::int64_t>();
    p.stage2_steps = field("stage2_steps").get<std::int64_t>();
    p.cpu = field("cpu").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw progdiff::FormatError(path.string() + ": " + e.what());
  }
  return p;
}

}  // namespace job

#pragma once
// Schedule: one run-time type holding any built-in schedule kind and its settings, read from
// JSON with the keys of diffusers' scheduler_config.json (beta_schedule, beta_start, beta_end,
// num_train_timesteps, timestep_spacing, steps_offset, prediction_type, trained_betas) plus
// progdiff's keys for the continuous kinds (beta_min, beta_max, sigma_min, sigma_max, rho,
// t_min, grid_size). Keys it does not know (diffusers' "_class_name", "clip_sample", ...)
// are ignored; a known key with a bad value throws ConfigError naming the key.
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/core/json_file.hpp"
#include "progdiff/schedule/betas.hpp"
#include "progdiff/schedule/continuous.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/schedule/prediction_type.hpp"
#include "progdiff/schedule/spacing.hpp"

namespace progdiff::schedule {

enum class ScheduleKind { Linear, ScaledLinear, Cosine, Trained, VP, VE, EDM };
inline constexpr int kScheduleKindCount = 7;
static_assert(static_cast<int>(ScheduleKind::EDM) + 1 == kScheduleKindCount,
              "progdiff: a ScheduleKind was added: update kScheduleKindCount and kScheduleNames");

/// The names of "beta_schedule", one row each (the cosine schedule has diffusers' name and its
/// own); Trained has none, trained_betas selects it.
struct ScheduleName {
  const char* name;
  ScheduleKind kind;
};
inline constexpr std::array<ScheduleName, 7> kScheduleNames{{{"linear", ScheduleKind::Linear},
                                                             {"scaled_linear", ScheduleKind::ScaledLinear},
                                                             {"squaredcos_cap_v2", ScheduleKind::Cosine},
                                                             {"cosine", ScheduleKind::Cosine},
                                                             {"vp", ScheduleKind::VP},
                                                             {"ve", ScheduleKind::VE},
                                                             {"edm", ScheduleKind::EDM}}};

namespace detail {
/// Whether every kind but Trained has a name in the table.
constexpr bool every_schedule_kind_named() {
  for (int k = 0; k < kScheduleKindCount; ++k) {
    bool named = static_cast<ScheduleKind>(k) == ScheduleKind::Trained;
    for (const auto& row : kScheduleNames) named = named || static_cast<int>(row.kind) == k;
    if (!named) return false;
  }
  return true;
}
}  // namespace detail
static_assert(detail::every_schedule_kind_named(), "progdiff: a ScheduleKind has no name in kScheduleNames");

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Linear;
  std::int64_t num_train_timesteps = 1000;
  BetaSettings betas{};
  std::vector<double> trained_betas;                      // kind == Trained
  double beta_min = 0.1, beta_max = 20.0;                 // VP
  double sigma_min = 0.002, sigma_max = 80.0, rho = 7.0;  // VE / EDM
  double t_min = -1.0;                                    // < 0: the kind's default (VP 1e-5, VE / EDM 0)
  std::int64_t grid_size = -1;                            // < 0: num_train_timesteps (continuous kinds)
  TimestepSpacing timestep_spacing = TimestepSpacing::Leading;
  std::int64_t steps_offset = 0;
  PredictionType prediction_type = PredictionType::Epsilon;
};

namespace detail {

inline const nlohmann::json* find_key(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

inline double read_number(const nlohmann::json& j, const char* key, double fallback) {
  const auto* v = find_key(j, key);
  if (!v) return fallback;
  if (!v->is_number())
    throw ConfigError(std::string("schedule config: key \"") + key + "\" must be a number, got " + v->dump());
  return v->get<double>();
}

inline std::int64_t read_integer(const nlohmann::json& j, const char* key, std::int64_t fallback, std::int64_t min) {
  const auto* v = find_key(j, key);
  if (!v) return fallback;
  if (!v->is_number_integer())
    throw ConfigError(std::string("schedule config: key \"") + key + "\" must be an integer, got " + v->dump());
  const auto x = v->get<std::int64_t>();
  if (x < min)
    throw ConfigError(std::string("schedule config: key \"") + key + "\" must be >= " + std::to_string(min) + ", got " +
                      std::to_string(x));
  return x;
}

inline std::optional<std::string> read_string(const nlohmann::json& j, const char* key) {
  const auto* v = find_key(j, key);
  if (!v) return std::nullopt;
  if (!v->is_string())
    throw ConfigError(std::string("schedule config: key \"") + key + "\" must be a string, got " + v->dump());
  return v->get<std::string>();
}

}  // namespace detail

/// Reads a ScheduleConfig from a JSON object (diffusers' scheduler_config.json or progdiff's keys).
inline ScheduleConfig parse_schedule_config(const nlohmann::json& j) {
  using namespace detail;
  if (!j.is_object()) throw ConfigError("schedule config: expected a JSON object, got " + j.dump());
  ScheduleConfig c;
  if (auto name = read_string(j, "beta_schedule")) {
    const auto row = std::find_if(kScheduleNames.begin(), kScheduleNames.end(),
                                  [&](const ScheduleName& r) { return *name == r.name; });
    if (row == kScheduleNames.end()) {
      std::string known;
      for (const auto& r : kScheduleNames) known += std::string(known.empty() ? "" : ", ") + r.name;
      throw ConfigError("schedule config: key \"beta_schedule\" = \"" + *name + "\" is not one of " + known);
    }
    c.kind = row->kind;
  }
  if (c.kind == ScheduleKind::ScaledLinear) c.betas.beta_start = 0.00085, c.betas.beta_end = 0.012;
  if (c.kind == ScheduleKind::VE) c.sigma_min = 0.01, c.sigma_max = 50.0;
  c.num_train_timesteps = read_integer(j, "num_train_timesteps", c.num_train_timesteps, 1);
  c.betas.beta_start = read_number(j, "beta_start", c.betas.beta_start);
  c.betas.beta_end = read_number(j, "beta_end", c.betas.beta_end);
  c.betas.cosine_offset = read_number(j, "cosine_offset", c.betas.cosine_offset);
  c.betas.max_beta = read_number(j, "max_beta", c.betas.max_beta);
  if (const auto* tb = find_key(j, "trained_betas")) {
    if (!tb->is_array() || tb->empty())
      throw ConfigError("schedule config: key \"trained_betas\" must be null or a non-empty array of numbers");
    for (std::size_t i = 0; i < tb->size(); ++i) {
      const auto& b = (*tb)[i];
      if (!b.is_number() || b.get<double>() <= 0 || b.get<double>() >= 1)
        throw ConfigError("schedule config: key \"trained_betas\"[" + std::to_string(i) + "] = " + b.dump() +
                          " is not a number in (0, 1)");
      c.trained_betas.push_back(b.get<double>());
    }
    c.kind = ScheduleKind::Trained;
    c.num_train_timesteps = static_cast<std::int64_t>(c.trained_betas.size());
  }
  c.beta_min = read_number(j, "beta_min", c.beta_min);
  c.beta_max = read_number(j, "beta_max", c.beta_max);
  c.sigma_min = read_number(j, "sigma_min", c.sigma_min);
  c.sigma_max = read_number(j, "sigma_max", c.sigma_max);
  c.rho = read_number(j, "rho", c.rho);
  c.t_min = read_number(j, "t_min", c.t_min);
  c.grid_size = read_integer(j, "grid_size", c.grid_size, 1);
  if (auto s = read_string(j, "timestep_spacing"))
    c.timestep_spacing = parse_spacing(*s, "schedule config: key \"timestep_spacing\"");
  c.steps_offset = read_integer(j, "steps_offset", c.steps_offset, 0);
  if (auto p = read_string(j, "prediction_type")) {
    if (*p == "epsilon")
      c.prediction_type = PredictionType::Epsilon;
    else if (*p == "sample")
      c.prediction_type = PredictionType::Sample;
    else if (*p == "v_prediction")
      c.prediction_type = PredictionType::VPrediction;
    else
      throw ConfigError("schedule config: key \"prediction_type\" = \"" + *p +
                        "\" is not one of epsilon, sample, v_prediction");
  }
  return c;
}

/// Any built-in schedule chosen at run time; satisfies NoiseSchedule like the typed ones.
class Schedule : public Tabulated {
 public:
  explicit Schedule(ScheduleConfig config = {}) : config_(std::move(config)) { rebuild(); }

  static Schedule from_json(const nlohmann::json& j) { return Schedule(parse_schedule_config(j)); }
  /// Reads a scheduler_config.json; IoError if it cannot be opened, FormatError if it is not JSON.
  static Schedule from_file(const std::string& path) {
    const nlohmann::json j = read_json_file(path, "schedule config");
    try {
      return from_json(j);
    } catch (const ConfigError& e) {
      throw ConfigError(path + ": " + e.what());
    }
  }

  const ScheduleConfig& config() const { return config_; }
  ScheduleKind kind() const { return config_.kind; }
  bool is_discrete() const { return config_.kind <= ScheduleKind::Trained; }

  /// The sampling timesteps for `sampling_steps` under the configured spacing and offset.
  std::vector<std::int64_t> timesteps(std::int64_t sampling_steps) const {
    return respace(size(), sampling_steps, config_.timestep_spacing, config_.steps_offset);
  }

 private:
  /// Copies the grid of a typed schedule into this one.
  template <class S>
  void adopt(const S& s) {
    static_cast<Tabulated&>(*this) = static_cast<const Tabulated&>(s);
  }
  struct Betas : DiscreteBase {
    explicit Betas(const std::vector<double>& b) { build(b); }
  };

  void rebuild() {
    const auto& c = config_;
    const std::int64_t grid = c.grid_size > 0 ? c.grid_size : c.num_train_timesteps;
    switch (c.kind) {
      case ScheduleKind::Linear:
        adopt(Betas(make_betas(BetaKind::Linear, c.num_train_timesteps, c.betas)));
        break;
      case ScheduleKind::ScaledLinear:
        adopt(Betas(make_betas(BetaKind::ScaledLinear, c.num_train_timesteps, c.betas)));
        break;
      case ScheduleKind::Cosine:
        adopt(Betas(make_betas(BetaKind::Cosine, c.num_train_timesteps, c.betas)));
        break;
      case ScheduleKind::Trained:
        adopt(Betas(c.trained_betas));
        break;
      case ScheduleKind::VP:
        adopt(VP(grid, c.beta_min, c.beta_max, c.t_min < 0 ? 1e-5 : c.t_min));
        break;
      case ScheduleKind::VE:
        adopt(VE(grid, c.sigma_min, c.sigma_max, c.t_min < 0 ? 0.0 : c.t_min));
        break;
      case ScheduleKind::EDM:
        adopt(EDM(grid, c.sigma_min, c.sigma_max, c.rho, c.t_min < 0 ? 0.0 : c.t_min));
        break;
    }
  }

  ScheduleConfig config_;
};

}  // namespace progdiff::schedule

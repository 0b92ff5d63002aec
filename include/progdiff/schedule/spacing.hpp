#pragma once
// Respacing T training timesteps to S sampling steps, as diffusers' DDPM/DDIM schedulers do
// (`timestep_spacing`, Table 2 of Lin et al. 2024, "Common Diffusion Noise Schedules and Sample
// Steps are Flawed"). Returned in sampling order (descending).
//   linspace  round(linspace(0, T - 1, S))
//   leading   k * (T div S) + steps_offset, k = 0..S-1
//   trailing  round(T - k * T / S) - 1, k = 0..S-1
// Rounding is half-to-even, as numpy's round. steps_offset applies to "leading" only, as in diffusers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::schedule {

enum class TimestepSpacing { Leading, Trailing, Linspace };

inline TimestepSpacing parse_spacing(std::string_view name, const std::string& where = "timestep_spacing") {
  if (name == "leading") return TimestepSpacing::Leading;
  if (name == "trailing") return TimestepSpacing::Trailing;
  if (name == "linspace") return TimestepSpacing::Linspace;
  throw ConfigError(where + ": \"" + std::string(name) + "\" is not one of leading, trailing, linspace");
}

inline const char* spacing_name(TimestepSpacing s) {
  switch (s) {
    case TimestepSpacing::Leading:
      return "leading";
    case TimestepSpacing::Trailing:
      return "trailing";
    case TimestepSpacing::Linspace:
      return "linspace";
  }
  return "?";
}

/// The S sampling timesteps (descending) among T training timesteps.
inline std::vector<std::int64_t> respace(std::int64_t train_steps, std::int64_t sampling_steps, TimestepSpacing spacing,
                                         std::int64_t steps_offset = 0) {
  require(train_steps >= 1, "respace: num_train_timesteps must be >= 1, got " + std::to_string(train_steps));
  require(sampling_steps >= 1 && sampling_steps <= train_steps, "respace: num_inference_steps must lie in [1, " +
                                                                    std::to_string(train_steps) + "], got " +
                                                                    std::to_string(sampling_steps));
  const double T = static_cast<double>(train_steps), S = static_cast<double>(sampling_steps);
  std::vector<std::int64_t> out(static_cast<std::size_t>(sampling_steps));
  for (std::int64_t k = 0; k < sampling_steps; ++k) {
    const double kd = static_cast<double>(k);
    std::int64_t v = 0;
    switch (spacing) {
      case TimestepSpacing::Linspace: {
        // numpy.linspace(0, T - 1, S): k * step, the last point exactly T - 1
        const double x = sampling_steps == 1 ? 0.0 : (k == sampling_steps - 1 ? T - 1 : kd * ((T - 1) / (S - 1)));
        v = static_cast<std::int64_t>(std::nearbyint(x));
        break;
      }
      case TimestepSpacing::Leading:
        v = k * (train_steps / sampling_steps) + steps_offset;
        break;
      case TimestepSpacing::Trailing:
        v = static_cast<std::int64_t>(std::nearbyint(T - kd * (T / S))) - 1;
        break;
    }
    out[static_cast<std::size_t>(k)] = v;
  }
  // linspace and leading ascend in k; trailing already descends
  if (spacing != TimestepSpacing::Trailing) std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace progdiff::schedule

#pragma once
// Learning rate: linear warm-up, then constant or half-cosine decay, as diffusers'
// get_constant_schedule_with_warmup / get_cosine_schedule_with_warmup (num_cycles = 0.5):
//   step < W:  lr * step / W
//   constant:  lr
//   cosine:    lr_min + (lr - lr_min) * 0.5 (1 + cos(pi * min(1, (step - W) / (S - W))))
// with `step` the number of optimizer steps already taken (0 for the first), W the warm-up
// steps and S the total steps.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>

#include "progdiff/core/error.hpp"

namespace progdiff::optim {

enum class LrDecay { Constant, Cosine };

struct LrSchedule {
  double lr = 1e-4;
  std::int64_t warmup_steps = 0;
  LrDecay decay = LrDecay::Constant;
  std::int64_t total_steps = 0;  // cosine only: where the decay reaches lr_min
  double lr_min = 0.0;           // cosine only

  /// The learning rate of the update that follows `step` completed steps.
  double at(std::int64_t step) const {
    require(step >= 0, "LrSchedule: step must be >= 0, got " + std::to_string(step));
    require(warmup_steps >= 0, "LrSchedule: warmup_steps must be >= 0");
    if (step < warmup_steps) return lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
    if (decay == LrDecay::Constant) return lr;
    require(total_steps > warmup_steps, "LrSchedule: cosine decay needs total_steps (" + std::to_string(total_steps) +
                                            ") > warmup_steps (" + std::to_string(warmup_steps) + ")");
    const double progress =
        std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps));
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  }
};

}  // namespace progdiff::optim

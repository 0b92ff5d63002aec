#pragma once
// StepInfo: what a training step reports to step callbacks and training observers.
#include <cstdint>
#include <functional>
#include <vector>

namespace progdiff::train {

/// What a step callback sees after each completed step.
struct StepInfo {
  std::int64_t step = 0;  // completed steps (1 after the first)
  std::int64_t total = 0;
  std::vector<double> group_losses;  // one per group (NaN for a group without samples this step)
  double loss = 0.0;                 // PerGroup: the mean of the group losses; Mixed: the batch loss
  double lr = 0.0;
  bool checkpointed = false;  // a checkpoint was written after this step
};

using StepCallback = std::function<void(const StepInfo&)>;

}  // namespace progdiff::train

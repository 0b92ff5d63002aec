#pragma once
// run_tdc on the training split alone: the validation slice that selects among pruning schemes is
// carved from the training split (data/validation_split.hpp), never taken from the test split,
// which is read only for the final numbers.
//
//   auto [fit, validation] = data::split_validation(train_split, 5000);   // the last 5000 images
//   tdc::run_tdc(base, partition, schedule, fit, validation, options);
//   // or, the same in one call: tdc::run_tdc(base, partition, schedule, train_split, options)
//   // (either form takes a training objective after the options: train::HybridObjective{}; an EDM
//   // base, model::EdmPreconditioned<model::Progressive<Net>>, takes the same calls with grid.schedule())
#include <utility>

#include "progdiff/data/image_dataset.hpp"
#include "progdiff/data/validation_split.hpp"
#include "progdiff/tdc/pipeline.hpp"

namespace progdiff::tdc {

/// run_tdc on the training split alone: its last options.validation_images images select the
/// pruning schemes (and give the report's validation losses), the others are fine-tuned on.
template <class Net, schedule::NoiseSchedule Schedule>
TdcResult<Net> run_tdc(model::Progressive<Net>& base, group::Partition partition, const Schedule& schedule,
                       const data::ImageDataset& train_split, const TdcOptions& options, TdcStepCallback on_step = {}) {
  const data::ValidationSplit split = data::split_validation(train_split, options.validation_images);
  return run_tdc(base, std::move(partition), schedule, split.fit, split.validation, options, std::move(on_step));
}

/// The same with each group fine-tuned by `objective` (train::HybridObjective for a base with a
/// learned variance; tdc/pipeline.hpp).
template <class Net, schedule::NoiseSchedule Schedule, train::ObjectiveFor<model::Progressive<Net>> Objective>
TdcResult<Net> run_tdc(model::Progressive<Net>& base, group::Partition partition, const Schedule& schedule,
                       const data::ImageDataset& train_split, const TdcOptions& options, Objective objective,
                       TdcStepCallback on_step = {}) {
  const data::ValidationSplit split = data::split_validation(train_split, options.validation_images);
  return run_tdc(base, std::move(partition), schedule, split.fit, split.validation, options, std::move(objective),
                 std::move(on_step));
}

/// The same for an EDM base (model::EdmPreconditioned<model::Progressive<Net>>, train::EdmObjective;
/// tdc/pipeline.hpp), `schedule` its grid's schedule().
template <class Net, schedule::NoiseSchedule Schedule, class Objective = train::EdmObjective>
TdcResult<Net, model::EdmPreconditioned<model::Progressive<Net>>> run_tdc(
    model::EdmPreconditioned<model::Progressive<Net>>& base, group::Partition partition, const Schedule& schedule,
    const data::ImageDataset& train_split, const TdcOptions& options, Objective objective = {},
    TdcStepCallback on_step = {}) {
  const data::ValidationSplit split = data::split_validation(train_split, options.validation_images);
  return run_tdc(base, std::move(partition), schedule, split.fit, split.validation, options, std::move(objective),
                 std::move(on_step));
}

}  // namespace progdiff::tdc

#pragma once
// Stage 1 of step-adaptive training (TDC / "Not All Steps are Equal", sec. 3): the base denoiser
// learns every timestep of the schedule. The base is a one-group model::Progressive, so its
// checkpoint, sampling and the stage-2 copy all go through the same model type.
//
//   model::Progressive<Net> base(Net(Net::default_widths(), config), schedule.size());
//   base.initialize(gen);
//   train::TrainReport r = train::train_stage1(base, schedule, dataset, options);
#include "progdiff/model/progressive.hpp"
#include "progdiff/train/trainer.hpp"

namespace progdiff::train {

/// Trains `base` (one group covering the schedule) on uniformly drawn timesteps of all of
/// [0, T) (or options.make_sampler's) with `objective` (train/objective.hpp); resumes from
/// options.checkpoint_path when it exists. With a communicator (distributed/communicator.hpp)
/// every rank calls this on its copy of the model and the global batch is split over them.
template <class Objective, class Net, schedule::NoiseSchedule Schedule, class Comm = distributed::SingleProcess>
requires ObjectiveFor<Objective, model::Progressive<Net>> TrainReport
train_stage1(model::Progressive<Net>& base, const Schedule& schedule, const data::ImageDataset& dataset,
             const TrainOptions& options, const Objective& objective, StepCallback on_step = {}, Comm comm = {}) {
  require(base.group_count() == 1, "train_stage1: the base model must have one group covering every timestep, it has " +
                                       std::to_string(base.group_count()));
  Trainer<model::Progressive<Net>, Schedule, Objective, Comm> trainer(base, schedule, dataset, options,
                                                                      BatchMode::PerGroup, objective, std::move(comm));
  trainer.on_step(std::move(on_step));
  return trainer.run();
}

/// The same with the mean-squared error of the model's prediction type (SimpleObjective).
template <class Net, schedule::NoiseSchedule Schedule>
TrainReport train_stage1(model::Progressive<Net>& base, const Schedule& schedule, const data::ImageDataset& dataset,
                         const TrainOptions& options, StepCallback on_step = {}) {
  return train_stage1(base, schedule, dataset, options, SimpleObjective{}, std::move(on_step));
}

}  // namespace progdiff::train

#include "progdiff/core/precompiled.hpp"
#if PROGDIFF_PRECOMPILED
// Stage 1 of the small presets' models on DDPM's schedule comes from the precompiled component.
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/unet/small_presets.hpp"
#include "progdiff/unet/unet.hpp"
#define PROGDIFF_EXTERN_STAGE1(Net)                                                                                \
  extern template TrainReport train_stage1(model::Progressive<Net>&, const schedule::Linear<1000>&,                \
                                           const data::ImageDataset&, const TrainOptions&, StepCallback);          \
  extern template TrainReport train_stage1(model::Progressive<Net>&, const schedule::Linear<1000>&,                \
                                           const data::ImageDataset&, const TrainOptions&, const SimpleObjective&, \
                                           StepCallback, distributed::SingleProcess);
namespace progdiff::train {
PROGDIFF_EXTERN_STAGE1(unet::TinyUNet)
PROGDIFF_EXTERN_STAGE1(unet::SmallUNet)
PROGDIFF_EXTERN_STAGE1(unet::PaperUNet)
}  // namespace progdiff::train
#undef PROGDIFF_EXTERN_STAGE1
#endif

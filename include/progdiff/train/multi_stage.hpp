#pragma once
// Multi-stage training ("A Multi-Stage Framework for Diffusion Models", sec. 4): one
// shared-encoder U-Net with a decoder per timestep interval, trained end to end on batches that
// mix the intervals. Each sample's interval is drawn with probability |interval| / T (uniform
// timesteps overall when the samplers are uniform), and routed to its decoder; the encoder learns
// from every sample, decoder k from interval k's samples only.
//
//   model::IntervalRouted<Multi> m(Multi(widths, config), partition);
//   m.initialize(gen);
//   train::TrainReport r = train::train_multi_stage(m, schedule, dataset, options);
#include "progdiff/model/interval_routed.hpp"
#include "progdiff/train/trainer.hpp"

namespace progdiff::train {

/// Trains a shared-encoder (or separate-experts) model on mixed batches with `objective`
/// (train/objective.hpp); resumes from options.checkpoint_path when it exists. With a
/// communicator (distributed/communicator.hpp) the mixed batch is split over the ranks.
template <class Objective, class M, schedule::NoiseSchedule Schedule, class Comm = distributed::SingleProcess>
requires ObjectiveFor<Objective, model::IntervalRouted<M>> TrainReport
train_multi_stage(model::IntervalRouted<M>& model, const Schedule& schedule, const data::ImageDataset& dataset,
                  const TrainOptions& options, const Objective& objective, StepCallback on_step = {}, Comm comm = {}) {
  Trainer<model::IntervalRouted<M>, Schedule, Objective, Comm> trainer(model, schedule, dataset, options,
                                                                       BatchMode::Mixed, objective, std::move(comm));
  trainer.on_step(std::move(on_step));
  return trainer.run();
}

/// The same with the mean-squared error of the model's prediction type (SimpleObjective).
template <class M, schedule::NoiseSchedule Schedule>
TrainReport train_multi_stage(model::IntervalRouted<M>& model, const Schedule& schedule,
                              const data::ImageDataset& dataset, const TrainOptions& options,
                              StepCallback on_step = {}) {
  return train_multi_stage(model, schedule, dataset, options, SimpleObjective{}, std::move(on_step));
}

}  // namespace progdiff::train

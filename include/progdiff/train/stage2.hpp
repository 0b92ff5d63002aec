#pragma once
// Stage 2 of step-adaptive training without pruning (Step-Adaptive paper, Table 2's
// "fine-tune" rows): the trained base is copied into each group of a partition, and each copy is
// fine-tuned on its group's timesteps only. Between copy and fine-tuning a hook may change each
// group's denoiser, e.g. replace it by a net pruned to the group's FLOPs budget (same type,
// narrower width table).
//
//   auto hook = [&](std::int64_t k, Net& net) { net = prune_to_budget(net, partition.budgets[k]); };
//   model::Progressive<Net> grouped = train::train_stage2(base, partition, schedule, data, options, hook);
//
// Each step trains every group on its own batch (BatchMode::PerGroup), so the groups learn as if
// fine-tuned one after another. On resume (options.checkpoint_path exists) the per-group widths
// come from the checkpoint's description and the hook is not called again.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <type_traits>

#include "progdiff/distributed/replicate.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/train/trainer.hpp"

namespace progdiff::train {

/// Called once per group, after the copy of the base and before fine-tuning (a lambda converts:
/// the functions below take it in a non-deduced context).
template <class Net>
using GroupHook = std::function<void(std::int64_t group, Net& denoiser)>;

/// The grouped model stage 2 starts from: one clone of `base`'s denoiser per group of
/// `partition` (dropout seeds from Generator(seed, k)), then `hook` on each group.
template <class Net>
model::Progressive<Net> copy_into_groups(model::Progressive<Net>& base, group::Partition partition, std::uint64_t seed,
                                         const std::type_identity_t<GroupHook<Net>>& hook = {}) {
  require(base.group_count() == 1,
          "copy_into_groups: the base must have one group, it has " + std::to_string(base.group_count()));
  require(partition.size() == base.partition().size(),
          "copy_into_groups: the partition covers " + std::to_string(partition.size()) + " timesteps, the base model " +
              std::to_string(base.partition().size()));
  Generator gen(seed, 0x53544732u);  // "STG2"
  auto grouped =
      model::Progressive<Net>::copies_of(base.denoiser(0), std::move(partition), gen, base.prediction_type());
  if (hook)
    for (std::int64_t k = 0; k < grouped.group_count(); ++k) hook(k, grouped.denoiser(k));
  return grouped;
}

/// Copies `base` into the groups of `partition`, applies `hook`, fine-tunes every group on its
/// own timesteps and returns the grouped model; `report` (optional) receives the losses. With a
/// communicator (distributed/communicator.hpp) every rank calls this and each group's batch is
/// split over the ranks; the hook must give every rank the same structure.
template <class Objective, class Net, schedule::NoiseSchedule Schedule, class Comm = distributed::SingleProcess>
requires ObjectiveFor<Objective, model::Progressive<Net>> model::Progressive<Net> train_stage2(
    model::Progressive<Net>& base, group::Partition partition, const Schedule& schedule,
    const data::ImageDataset& dataset, const TrainOptions& options, const Objective& objective,
    const std::type_identity_t<GroupHook<Net>>& hook = {}, TrainReport* report = nullptr, StepCallback on_step = {},
    Comm comm = {}) {
  std::optional<model::Progressive<Net>> grouped;
  // rank 0 decides, so that every rank builds the same structure
  if (distributed::rank0_says(comm, options.resume && !options.checkpoint_path.empty() &&
                                        std::filesystem::exists(options.checkpoint_path))) {
    Generator gen(options.seed, 0x53544732u);
    grouped.emplace(model::Progressive<Net>::from_description(io::read_safetensors(options.checkpoint_path).metadata,
                                                              gen, base.denoiser(0).config()));
  } else {
    grouped.emplace(copy_into_groups(base, std::move(partition), options.seed, hook));
  }
  Trainer<model::Progressive<Net>, Schedule, Objective, Comm> trainer(*grouped, schedule, dataset, options,
                                                                      BatchMode::PerGroup, objective, std::move(comm));
  trainer.on_step(std::move(on_step));
  TrainReport r = trainer.run();
  if (report) *report = std::move(r);
  return std::move(*grouped);
}

/// The same with the mean-squared error of the model's prediction type (SimpleObjective).
template <class Net, schedule::NoiseSchedule Schedule>
model::Progressive<Net> train_stage2(model::Progressive<Net>& base, group::Partition partition,
                                     const Schedule& schedule, const data::ImageDataset& dataset,
                                     const TrainOptions& options, const std::type_identity_t<GroupHook<Net>>& hook = {},
                                     TrainReport* report = nullptr, StepCallback on_step = {}) {
  return train_stage2(base, std::move(partition), schedule, dataset, options, SimpleObjective{}, hook, report,
                      std::move(on_step));
}

}  // namespace progdiff::train

#include "progdiff/core/precompiled.hpp"
#if PROGDIFF_PRECOMPILED
// Stage 2 of the small presets' models on DDPM's schedule comes from the precompiled component.
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/unet/small_presets.hpp"
#include "progdiff/unet/unet.hpp"
#define PROGDIFF_EXTERN_STAGE2(Net)                                                                                   \
  extern template model::Progressive<Net> train_stage2(                                                               \
      model::Progressive<Net>&, group::Partition, const schedule::Linear<1000>&, const data::ImageDataset&,           \
      const TrainOptions&, const std::type_identity_t<GroupHook<Net>>&, TrainReport*, StepCallback);                  \
  extern template model::Progressive<Net> train_stage2(                                                               \
      model::Progressive<Net>&, group::Partition, const schedule::Linear<1000>&, const data::ImageDataset&,           \
      const TrainOptions&, const SimpleObjective&, const std::type_identity_t<GroupHook<Net>>&, TrainReport*,         \
      StepCallback, distributed::SingleProcess);                                                                      \
  extern template model::Progressive<Net> copy_into_groups(model::Progressive<Net>&, group::Partition, std::uint64_t, \
                                                           const std::type_identity_t<GroupHook<Net>>&);
namespace progdiff::train {
PROGDIFF_EXTERN_STAGE2(unet::TinyUNet)
PROGDIFF_EXTERN_STAGE2(unet::SmallUNet)
PROGDIFF_EXTERN_STAGE2(unet::PaperUNet)
}  // namespace progdiff::train
#undef PROGDIFF_EXTERN_STAGE2
#endif

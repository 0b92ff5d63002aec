#pragma once
// The main job's variants, declared once. Each variant of each scale is compiled in a
// translation unit of its own (variant_*.cpp, from job_steps.hpp), so no unit instantiates
// more than one family of models and the build runs them side by side.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>

#include "models.hpp"
#include "options.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/group/partition.hpp"
#include "report.hpp"
#include "test_split.hpp"
#include "time_budget.hpp"

namespace job {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// A phase of the job, timed into the report.
template <class F>
auto timed(Report& report, const std::string& phase, F&& f) {
  std::printf("== %s\n", phase.c_str());
  std::fflush(stdout);
  const auto start = Clock::now();
  if constexpr (std::is_void_v<decltype(f())>) {
    f();
    report.times.push_back({phase, seconds_since(start)});
  } else {
    auto r = f();
    report.times.push_back({phase, seconds_since(start)});
    return r;
  }
}

template <class Scale>
struct Job {
  using Net = typename Scale::Net;
  using Recipe = typename Scale::Recipe;
  using Schedule = typename Recipe::Schedule;
  /// DDPM's U-Net trained on L_simple: what --base-from imports (diffusers' UNet2DModel).
  static constexpr bool kPlainDdpm = std::is_same_v<Recipe, SimpleRecipe> && Scale::arch == Arch::Ddpm;
  const Options& o;
  const Schedule& schedule;
  const pd::group::Partition& partition;
  const pd::data::ImageDataset& train;       // the images trained on: the training split less `validation`
  const pd::data::ImageDataset& validation;  // held out of the training split; what every choice is scored on
  SealedTestSplit& test;                     // read for the final numbers only (test_split.hpp)
  Report& report;

  /// FLOPs per image of one forward pass of the base U-Net.
  double base_flops() const;
  /// The training FLOPs of the copies' plan, stage 1 and stage 2 (--equal-compute's budget).
  double compute_budget() const;

  /// A freshly initialized base model of the scale.
  pd::model::Progressive<Net> new_base() const;
  /// The base's U-Net at the run's widths and configuration, not initialized.
  Net base_net() const;
  /// Stage 1 (all timesteps) for `steps`; the EMA weights are loaded into the returned model
  /// (wrapped as the recipe trains it: EDM's preconditioning).
  typename Recipe::template Trained<pd::model::Progressive<Net>> stage1(std::int64_t steps);
  /// --base-from: the diffusers UNet2DModel of that folder as the stage-1 base (simple recipe).
  pd::model::Progressive<Net> imported_base();
  /// Stage 1, then a copy of the base per group fine-tuned on its timesteps.
  void experts();
  /// TDC stage 2: per group, the base pruned to the group's FLOPs budget by the chosen
  /// criterion and fine-tuned on the group's timesteps (tdc/pipeline.hpp).
  void tdc();
  /// One U-Net for every timestep, trained for as many images as the experts see.
  void unified();
  /// A shared encoder with one decoder per group, trained on mixed batches.
  void multi_stage();
  /// One whole U-Net per group, trained from scratch on mixed batches.
  void separate();
  /// --minutes: the step counts that fill the time budget, from a training rate measured here
  /// once, or from the plan a previous run recorded in the output directory.
  TimeBudgetPlan planned_time_budget() const;
  /// The variant the options choose, with the step counts of --minutes when given.
  void run();
  /// The variant the options choose.
  void run_variant();
};

template <class Scale>
inline void Job<Scale>::run() {
  if (o.minutes > 0) {
    const TimeBudgetPlan plan = planned_time_budget();
    Options planned = o;
    planned.steps = plan.steps, planned.stage2_steps = plan.stage2_steps;
    report.options = planned;
    report.time_budget = plan;
    return Job{planned, schedule, partition, train, validation, test, report}.run_variant();
  }
  run_variant();
}

template <class Scale>
inline void Job<Scale>::run_variant() {
  switch (o.variant) {
    case Variant::Experts:
      return experts();
    case Variant::Unified:
      return unified();
    case Variant::Tdc:
      return tdc();
    case Variant::MultiStage:
      return multi_stage();
    case Variant::Separate:
      return separate();
  }
}
// Each variant is compiled once, in its own unit (variant_*.cpp).
#define PROGDIFF_JOB_VARIANTS(Scale)                                      \
  extern template TimeBudgetPlan Job<Scale>::planned_time_budget() const; \
  extern template void Job<Scale>::experts();                             \
  extern template void Job<Scale>::unified();                             \
  extern template void Job<Scale>::tdc();                                 \
  extern template void Job<Scale>::multi_stage();                         \
  extern template void Job<Scale>::separate();
PROGDIFF_JOB_VARIANTS(SmallScale)
PROGDIFF_JOB_VARIANTS(PaperScale)
#ifdef __CUDACC__
PROGDIFF_JOB_VARIANTS(SmallScaleOn<pd::backend::Cuda>)
PROGDIFF_JOB_VARIANTS(PaperScaleOn<pd::backend::Cuda>)
#endif
#undef PROGDIFF_JOB_VARIANTS

/// The small scale on the CPU with another recipe or other blocks (--objective, --arch).
template <class R, Arch A>
using SmallCpu = SmallScaleWith<Cpu, R, A>;
// Each such scale's variants but TDC are compiled in one unit (variant_recipe_*.cpp), its TDC
// variant in another (variant_recipe_*_tdc.cpp).
#define PROGDIFF_JOB_VARIANTS(Scale)                                      \
  extern template TimeBudgetPlan Job<Scale>::planned_time_budget() const; \
  extern template void Job<Scale>::experts();                             \
  extern template void Job<Scale>::unified();                             \
  extern template void Job<Scale>::multi_stage();                         \
  extern template void Job<Scale>::separate();
using SmallDdpmpp = SmallCpu<SimpleRecipe, Arch::Ddpmpp>;
using SmallHybrid = SmallCpu<HybridRecipe, Arch::Ddpm>;
using SmallHybridDdpmpp = SmallCpu<HybridRecipe, Arch::Ddpmpp>;
using SmallEdm = SmallCpu<EdmRecipe, Arch::Ddpm>;
using SmallEdmDdpmpp = SmallCpu<EdmRecipe, Arch::Ddpmpp>;
#ifndef PROGDIFF_APPS_DEFAULT_RECIPE_ONLY
PROGDIFF_JOB_VARIANTS(SmallDdpmpp)
PROGDIFF_JOB_VARIANTS(SmallHybrid)
PROGDIFF_JOB_VARIANTS(SmallHybridDdpmpp)
PROGDIFF_JOB_VARIANTS(SmallEdm)
PROGDIFF_JOB_VARIANTS(SmallEdmDdpmpp)
extern template void Job<SmallDdpmpp>::tdc();
extern template void Job<SmallHybrid>::tdc();
extern template void Job<SmallHybridDdpmpp>::tdc();
extern template void Job<SmallEdm>::tdc();
extern template void Job<SmallEdmDdpmpp>::tdc();
#endif
#undef PROGDIFF_JOB_VARIANTS

}  // namespace job

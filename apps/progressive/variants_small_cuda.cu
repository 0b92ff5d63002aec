// The main job on the CUDA back end, small scale: every variant (copies per group and the unified
// baseline, the shared-encoder model with one decoder per group, separate experts, TDC stage 2).
// One unit for all of them: nvcc compiles the device code of the library's kernels once per unit,
// which was most of each variant's compile time (docs/build.md).
#include "job_steps.hpp"

template job::TimeBudgetPlan job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::planned_time_budget() const;
template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::experts();
template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::unified();
template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::multi_stage();
template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::separate();
template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::tdc();

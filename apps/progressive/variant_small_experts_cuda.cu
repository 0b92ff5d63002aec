// The main job on the CUDA back end, small scale: copies per group and the unified baseline.
#include "job_steps.hpp"

template job::TimeBudgetPlan job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::planned_time_budget() const;
template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::experts();
template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::unified();

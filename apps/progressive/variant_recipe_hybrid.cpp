// The main job, small scale, on the CPU: IDDPM's hybrid objective with a learned variance (--objective, --arch); every
// variant but TDC (variant_recipe_hybrid_tdc.cpp).
#include "job_steps.hpp"

template job::TimeBudgetPlan job::Job<job::SmallHybrid>::planned_time_budget() const;
template void job::Job<job::SmallHybrid>::experts();
template void job::Job<job::SmallHybrid>::unified();
template void job::Job<job::SmallHybrid>::multi_stage();
template void job::Job<job::SmallHybrid>::separate();

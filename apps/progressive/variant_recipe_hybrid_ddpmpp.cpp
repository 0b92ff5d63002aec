// The main job, small scale, on the CPU: IDDPM's hybrid objective with DDPM++'s blocks
// (--objective, --arch); every variant but TDC (variant_recipe_hybrid_ddpmpp_tdc.cpp).
#include "job_steps.hpp"

template job::TimeBudgetPlan job::Job<job::SmallHybridDdpmpp>::planned_time_budget() const;
template void job::Job<job::SmallHybridDdpmpp>::experts();
template void job::Job<job::SmallHybridDdpmpp>::unified();
template void job::Job<job::SmallHybridDdpmpp>::multi_stage();
template void job::Job<job::SmallHybridDdpmpp>::separate();

// The main job, small scale, on the CPU: EDM's preconditioning and training with DDPM++'s blocks (--objective, --arch);
// every variant but TDC (variant_recipe_edm_ddpmpp_tdc.cpp).
#include "job_steps.hpp"

template job::TimeBudgetPlan job::Job<job::SmallEdmDdpmpp>::planned_time_budget() const;
template void job::Job<job::SmallEdmDdpmpp>::experts();
template void job::Job<job::SmallEdmDdpmpp>::unified();
template void job::Job<job::SmallEdmDdpmpp>::multi_stage();
template void job::Job<job::SmallEdmDdpmpp>::separate();

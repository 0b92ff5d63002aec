// The main job, small scale, on the CPU: DDPM's L_simple with DDPM++'s blocks (--objective,
// --arch); every variant but TDC (variant_recipe_ddpmpp_tdc.cpp).
#include "job_steps.hpp"

template job::TimeBudgetPlan job::Job<job::SmallDdpmpp>::planned_time_budget() const;
template void job::Job<job::SmallDdpmpp>::experts();
template void job::Job<job::SmallDdpmpp>::unified();
template void job::Job<job::SmallDdpmpp>::multi_stage();
template void job::Job<job::SmallDdpmpp>::separate();

// The main job, small scale, on the CPU: EDM's preconditioning and training (--objective, --arch); every variant but
// TDC (variant_recipe_edm_tdc.cpp).
#include "job_steps.hpp"

template job::TimeBudgetPlan job::Job<job::SmallEdm>::planned_time_budget() const;
template void job::Job<job::SmallEdm>::experts();
template void job::Job<job::SmallEdm>::unified();
template void job::Job<job::SmallEdm>::multi_stage();
template void job::Job<job::SmallEdm>::separate();

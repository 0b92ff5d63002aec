// The main job, small scale: copies per group and the unified baseline.
#include "job_steps.hpp"

template job::TimeBudgetPlan job::Job<job::SmallScale>::planned_time_budget() const;
template void job::Job<job::SmallScale>::experts();
template void job::Job<job::SmallScale>::unified();

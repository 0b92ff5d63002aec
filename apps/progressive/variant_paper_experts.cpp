// The main job, paper scale: copies per group and the unified baseline.
#include "job_steps.hpp"

template job::TimeBudgetPlan job::Job<job::PaperScale>::planned_time_budget() const;
template void job::Job<job::PaperScale>::experts();
template void job::Job<job::PaperScale>::unified();

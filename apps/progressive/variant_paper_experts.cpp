// The main job, paper scale: copies per group and the unified baseline.
#include "job_steps.hpp"

template void job::Job<job::PaperScale>::experts();
template void job::Job<job::PaperScale>::unified();

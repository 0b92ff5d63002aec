// The main job, small scale: the TDC pipeline (pruned denoisers per group).
#include "job_steps.hpp"

template void job::Job<job::SmallScale>::tdc();

// The main job, small scale, on the CPU: the TDC pipeline (pruned denoisers per group) with
// IDDPM's hybrid objective with a learned variance (--objective, --arch).
#include "job_steps.hpp"

template void job::Job<job::SmallHybrid>::tdc();

// The main job, small scale, on the CPU: the TDC pipeline (pruned denoisers per group) with EDM's
// preconditioning and training (--objective, --arch).
#include "job_steps.hpp"

template void job::Job<job::SmallEdm>::tdc();

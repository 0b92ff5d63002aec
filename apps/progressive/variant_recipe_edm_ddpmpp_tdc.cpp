// The main job, small scale, on the CPU: the TDC pipeline (pruned denoisers per group) with EDM's
// preconditioning and training with DDPM++'s blocks (--objective, --arch).
#include "job_steps.hpp"

template void job::Job<job::SmallEdmDdpmpp>::tdc();

// The main job, paper scale: the TDC pipeline (pruned denoisers per group).
#include "job_steps.hpp"

template void job::Job<job::PaperScale>::tdc();

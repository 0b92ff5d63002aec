// The main job, small scale: the shared-encoder model, one decoder per group.
#include "job_steps.hpp"

template void job::Job<job::SmallScale>::multi_stage();

// The main job, paper scale: the shared-encoder model, one decoder per group.
#include "job_steps.hpp"

template void job::Job<job::PaperScale>::multi_stage();

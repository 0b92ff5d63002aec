// The main job on the CUDA back end, small scale: the shared-encoder model, one decoder per group.
#include "job_steps.hpp"

template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::multi_stage();

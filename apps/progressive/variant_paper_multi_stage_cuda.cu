// The main job on the CUDA back end, paper scale: the shared-encoder model, one decoder per group.
#include "job_steps.hpp"

template void job::Job<job::PaperScaleOn<progdiff::backend::Cuda>>::multi_stage();

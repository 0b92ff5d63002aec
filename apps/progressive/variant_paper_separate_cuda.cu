// The main job on the CUDA back end, paper scale: separate experts (one whole U-Net per group).
#include "job_steps.hpp"

template void job::Job<job::PaperScaleOn<progdiff::backend::Cuda>>::separate();

// The main job on the CUDA back end, small scale: separate experts (one whole U-Net per group).
#include "job_steps.hpp"

template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::separate();

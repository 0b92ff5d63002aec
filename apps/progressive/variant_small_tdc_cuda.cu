// The main job on the CUDA back end, small scale: TDC stage 2 (pruning and fine-tuning per group).
#include "job_steps.hpp"

template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::tdc();

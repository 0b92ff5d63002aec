// The main job on the CUDA back end, paper scale: TDC stage 2 (pruning and fine-tuning per group).
#include "job_steps.hpp"

template void job::Job<job::PaperScaleOn<progdiff::backend::Cuda>>::tdc();

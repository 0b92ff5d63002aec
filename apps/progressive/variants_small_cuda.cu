// The main job on the CUDA back end, small scale: every variant (copies per group and the unified
// baseline, the shared-encoder model with one decoder per group, separate experts, TDC stage 2).
// One unit for all of them: nvcc compiles the device code of the library's kernels once per unit,
// which was most of each variant's compile time (docs/build.md).
#include "job_steps.hpp"

// Every member of the job for this scale, the variants among them.
template class job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>;

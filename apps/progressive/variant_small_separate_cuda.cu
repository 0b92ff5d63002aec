// The main job on the CUDA back end, small scale: separate experts with 2, 3 and 4 experts.
#include "job_steps.hpp"

template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::separate<2>();
template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::separate<3>();
template void job::Job<job::SmallScaleOn<progdiff::backend::Cuda>>::separate<4>();

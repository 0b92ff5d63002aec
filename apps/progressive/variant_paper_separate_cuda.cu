// The main job on the CUDA back end, paper scale: separate experts with 2, 3 and 4 experts.
#include "job_steps.hpp"

template void job::Job<job::PaperScaleOn<progdiff::backend::Cuda>>::separate<2>();
template void job::Job<job::PaperScaleOn<progdiff::backend::Cuda>>::separate<3>();
template void job::Job<job::PaperScaleOn<progdiff::backend::Cuda>>::separate<4>();

// The main job, paper scale: separate experts (one whole U-Net per group) with 2, 3 and 4 experts.
#include "job_steps.hpp"

template void job::Job<job::PaperScale>::separate<2>();
template void job::Job<job::PaperScale>::separate<3>();
template void job::Job<job::PaperScale>::separate<4>();

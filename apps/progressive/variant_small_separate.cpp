// The main job, small scale: separate experts (one whole U-Net per group).
#include "job_steps.hpp"

template void job::Job<job::SmallScale>::separate();

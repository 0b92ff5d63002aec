// The main job, small scale: shared-encoder models with 2, 3 and 4 decoders.
#include "job_steps.hpp"

template void job::Job<job::SmallScale>::multi_stage<2>();
template void job::Job<job::SmallScale>::multi_stage<3>();
template void job::Job<job::SmallScale>::multi_stage<4>();

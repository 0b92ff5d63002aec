#pragma once
// The model-independent training machinery: objectives, timestep samplers and the finite guard;
// the trainers (stage 1, stage 2, multi-stage) with their progress bar and CSV log. Also includes
// the layers training is built on: the losses and their weightings (loss/), the optimizer,
// learning-rate schedule, EMA and clipping (optim/) and checkpoints (io/checkpoint.hpp). The TDC
// pipeline, built on this folder, is tdc/tdc.hpp.
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/loss/loss.hpp"
#include "progdiff/optim/optim.hpp"
#include "progdiff/train/csv_log.hpp"
#include "progdiff/train/edm_objective.hpp"
#include "progdiff/train/finite_guard.hpp"
#include "progdiff/train/hybrid_objective.hpp"
#include "progdiff/train/log_normal_timesteps.hpp"
#include "progdiff/train/multi_stage.hpp"
#include "progdiff/train/objective.hpp"
#include "progdiff/train/progress_bar.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/train/timestep_sampler.hpp"
#include "progdiff/train/trainer.hpp"
#include "progdiff/train/trainer_options.hpp"

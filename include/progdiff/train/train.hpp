#pragma once
// The model-independent training machinery: losses and weightings, AdamW, gradient clipping,
// learning-rate schedules, EMA, timestep samplers, checkpoints and the finite guard; the
// trainers (stage 1, stage 2, multi-stage) with their progress bar and CSV log; the TDC pipeline
// (stage 2 with pruning per group).
#include "progdiff/train/adamw.hpp"
#include "progdiff/train/checkpoint.hpp"
#include "progdiff/train/csv_log.hpp"
#include "progdiff/train/diffusion_loss.hpp"
#include "progdiff/train/ema.hpp"
#include "progdiff/train/finite_guard.hpp"
#include "progdiff/train/grad_clip.hpp"
#include "progdiff/train/loss_weighting.hpp"
#include "progdiff/train/lr_schedule.hpp"
#include "progdiff/train/multi_stage.hpp"
#include "progdiff/train/progress_bar.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/train/tdc_group_loss.hpp"
#include "progdiff/train/tdc_options.hpp"
#include "progdiff/train/tdc_pipeline.hpp"
#include "progdiff/train/tdc_validation.hpp"
#include "progdiff/train/tdc_pruning.hpp"
#include "progdiff/train/timestep_sampler.hpp"
#include "progdiff/train/trainer.hpp"
#include "progdiff/train/trainer_options.hpp"

#pragma once
// The model-independent training machinery: losses and weightings, AdamW, gradient clipping,
// learning-rate schedules, EMA, timestep samplers, checkpoints and the finite guard.
#include "progdiff/train/adamw.hpp"
#include "progdiff/train/checkpoint.hpp"
#include "progdiff/train/diffusion_loss.hpp"
#include "progdiff/train/ema.hpp"
#include "progdiff/train/finite_guard.hpp"
#include "progdiff/train/grad_clip.hpp"
#include "progdiff/train/loss_weighting.hpp"
#include "progdiff/train/lr_schedule.hpp"
#include "progdiff/train/timestep_sampler.hpp"

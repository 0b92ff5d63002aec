#pragma once
// Optimization of a model's parameters, independent of diffusion: AdamW, the learning-rate
// schedule (warm-up, constant or cosine decay), the exponential moving average of the weights
// and gradient-norm clipping.
#include "progdiff/optim/adamw.hpp"
#include "progdiff/optim/ema.hpp"
#include "progdiff/optim/grad_clip.hpp"
#include "progdiff/optim/lr_schedule.hpp"

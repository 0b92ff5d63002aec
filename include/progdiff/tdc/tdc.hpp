#pragma once
// TDC stage 2 (Step-Adaptive Training, sec. 4.3; TDC Training, Algorithm 1): the trained base
// becomes a progressive model, one denoiser per timestep group pruned to the group's FLOPs budget
// and fine-tuned on its timesteps (pipeline.hpp); its options and report (options.hpp), the pruning
// criteria (importance.hpp, pruning.hpp) and the held-out loss that ranks pruning schemes
// (group_loss.hpp, on the prediction head: prediction_head_loss.hpp), run_tdc on the training split
// alone (validation.hpp), and the groups fanned out over ranks (fan_out.hpp). Built on train/ (the
// Trainer fine-tunes each group), prune/ and distributed/; train/ does not include this folder.
#include "progdiff/tdc/fan_out.hpp"
#include "progdiff/tdc/group_loss.hpp"
#include "progdiff/tdc/importance.hpp"
#include "progdiff/tdc/options.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/tdc/prediction_head_loss.hpp"
#include "progdiff/tdc/pruning.hpp"
#include "progdiff/tdc/validation.hpp"

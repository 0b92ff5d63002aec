#pragma once
// Difficulty curves: per-timestep FLOPs budgets (Step-Adaptive eq. 8 and the Table 3 ablations).
#include "progdiff/difficulty/ablation_curves.hpp"
#include "progdiff/difficulty/difficulty_curve.hpp"
#include "progdiff/difficulty/snr_flops.hpp"

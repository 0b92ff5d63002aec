#pragma once
// Samplers of progressive diffusion: DDPM, DDIM, DPM-Solver++ (2M and single-step orders 1-3),
// Euler and Heun on sigma ladders, all driven per sample by the stepper, so a batch may mix
// timesteps, and all drawing their noise from per-sample Philox streams.
#include "progdiff/sample/ddim.hpp"
#include "progdiff/sample/ddpm.hpp"
#include "progdiff/sample/denoiser.hpp"
#include "progdiff/sample/dpm_solver.hpp"
#include "progdiff/sample/dpm_solver_singlestep.hpp"
#include "progdiff/sample/edm_heun.hpp"
#include "progdiff/sample/euler.hpp"
#include "progdiff/sample/fixed_small_variance.hpp"
#include "progdiff/sample/heun.hpp"
#include "progdiff/sample/learned_variance_ddpm.hpp"
#include "progdiff/sample/mean_only.hpp"
#include "progdiff/sample/stepper.hpp"

namespace progdiff::sample {
static_assert(check_sampler<Ddpm>() && check_sampler<Ddim>());
static_assert(check_sampler<DpmSolverMultistep>() && check_sampler<DpmSolverSinglestep>());
static_assert(check_sampler<Euler>() && check_sampler<Heun>());
}  // namespace progdiff::sample

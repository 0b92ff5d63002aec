#pragma once
// Noise schedules: the NoiseSchedule concept, discrete (DDPM, LDM, IDDPM) and continuous
// (VP, VE, EDM) schedules, the run-time Schedule read from JSON, and timestep respacing.
#include "progdiff/schedule/continuous.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/schedule/gaussian_posterior.hpp"
#include "progdiff/schedule/noise_schedule.hpp"
#include "progdiff/schedule/quantities.hpp"
#include "progdiff/schedule/runtime_schedule.hpp"
#include "progdiff/schedule/spacing.hpp"

namespace progdiff::schedule {
static_assert(check_noise_schedule<Linear<1000>>());
static_assert(check_noise_schedule<Cosine<4000>>());
static_assert(check_noise_schedule<VP>() && check_noise_schedule<VE>() && check_noise_schedule<EDM>());
static_assert(check_noise_schedule<Schedule>());
}  // namespace progdiff::schedule

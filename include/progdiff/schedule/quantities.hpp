#pragma once
// Quantities every NoiseSchedule implies, as free functions so user schedules get them too.
#include <cmath>
#include <cstdint>

#include "progdiff/schedule/noise_schedule.hpp"

namespace progdiff::schedule {

/// Signal-to-noise ratio alpha-bar / (1 - alpha-bar) = 1 / sigma^2 (eq. 1 kernel).
template <NoiseSchedule S>
double snr(const S& s, std::int64_t i) {
  const double sigma = s.sigma(i);
  return 1.0 / (sigma * sigma);
}

/// log-SNR, lambda = ln(alpha-bar / (1 - alpha-bar)) = -2 ln sigma.
template <NoiseSchedule S>
double log_snr(const S& s, std::int64_t i) {
  return -2.0 * std::log(s.sigma(i));
}

/// SNR in decibels, eq. 7 of the Step-Adaptive paper: 10 log10(alpha-bar / (1 - alpha-bar)).
template <NoiseSchedule S>
double snr_db(const S& s, std::int64_t i) {
  return -20.0 * std::log10(s.sigma(i));
}

/// Per-step alpha_t = alpha-bar_t / alpha-bar_{t-1} (alpha-bar_{-1} = 1), as in DDPM.
template <NoiseSchedule S>
double alpha(const S& s, std::int64_t i) {
  return i == 0 ? s.alpha_bar(0) : s.alpha_bar(i) / s.alpha_bar(i - 1);
}

}  // namespace progdiff::schedule

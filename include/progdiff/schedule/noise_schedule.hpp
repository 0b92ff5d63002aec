#pragma once
// The NoiseSchedule concept: a grid of diffusion times with the perturbation kernel of eq. 1 of
// the multi-stage paper, p_t(x_t | x_0) = N(x_t; s_t x_0, s_t^2 sigma_t^2 I), at each grid point.
// Groupers, difficulty curves and samplers read schedules only through these five functions,
// so a user's own schedule works everywhere once it provides them.
#include <concepts>
#include <cstdint>

namespace progdiff::schedule {

// clang-format off
template <class S>
concept NoiseSchedule = requires(const S& s, std::int64_t i) {
  { s.size() } -> std::convertible_to<std::int64_t>;       // grid points (training timesteps)
  { s.time(i) } -> std::convertible_to<double>;            // t in [0, 1], increasing in i
  { s.alpha_bar(i) } -> std::convertible_to<double>;       // variance-preserving alpha-bar = 1 / (1 + sigma^2)
  { s.scale(i) } -> std::convertible_to<double>;           // s_t of eq. 1
  { s.sigma(i) } -> std::convertible_to<double>;           // sigma_t of eq. 1 (noise-to-signal ratio)
};
// clang-format on

/// Readable failure at every composition point that takes a schedule.
template <class S>
constexpr bool check_noise_schedule() {
  static_assert(NoiseSchedule<S>,
                "progdiff: the schedule type does not satisfy progdiff::schedule::NoiseSchedule; it needs "
                "const member functions size(), time(i), alpha_bar(i), scale(i) and sigma(i) returning "
                "numbers (see progdiff/schedule/noise_schedule.hpp)");
  return true;
}

}  // namespace progdiff::schedule

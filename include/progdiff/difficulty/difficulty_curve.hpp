#pragma once
// The DifficultyCurve concept: a FLOPs budget per timestep as a fraction of the full model's
// FLOPs F (Step-Adaptive paper, sec. 4.1). fractions(s)[i] in (0, 1] is the budget of grid point
// i of schedule s; the FLOPs budget is fractions(s)[i] * F.
#include <concepts>
#include <cstdint>
#include <vector>

#include "progdiff/schedule/noise_schedule.hpp"

namespace progdiff::difficulty {

template <class C, class S>
concept DifficultyCurve = schedule::NoiseSchedule<S> && requires(const C& c, const S& s) {
  { c.fractions(s) } -> std::convertible_to<std::vector<double>>;
};

/// Readable failure at every composition point that takes a curve.
template <class C, class S>
constexpr bool check_difficulty_curve() {
  static_assert(DifficultyCurve<C, S>,
                "progdiff: the curve type does not satisfy progdiff::difficulty::DifficultyCurve for this "
                "schedule; it needs a const member fractions(schedule) returning std::vector<double> with one "
                "FLOPs fraction in (0, 1] per grid point");
  return true;
}

/// FLOPs per grid point: fractions(s) * full_flops.
template <class C, class S>
std::vector<double> flops_budget(const C& curve, const S& s, double full_flops) {
  static_assert(check_difficulty_curve<C, S>());
  std::vector<double> f = curve.fractions(s);
  for (double& v : f) v *= full_flops;
  return f;
}

}  // namespace progdiff::difficulty

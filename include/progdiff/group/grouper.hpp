#pragma once
// The Grouper concept: maps a schedule's grid to a Partition of contiguous, ordered groups.
#include <concepts>

#include "progdiff/group/partition.hpp"
#include "progdiff/schedule/noise_schedule.hpp"

namespace progdiff::group {

template <class G, class S>
concept Grouper = schedule::NoiseSchedule<S> && requires(const G& g, const S& s) {
  { g.group(s) } -> std::same_as<Partition>;
};

/// Readable failure at every composition point that takes a grouper.
template <class G, class S>
constexpr bool check_grouper() {
  static_assert(Grouper<G, S>,
                "progdiff: the grouper type does not satisfy progdiff::group::Grouper for this schedule; it "
                "needs a const member group(schedule) returning progdiff::group::Partition");
  return true;
}

/// Runs a grouper and checks that its result covers the schedule's grid.
template <class G, class S>
Partition make_partition(const G& grouper, const S& s) {
  static_assert(check_grouper<G, S>());
  Partition p = grouper.group(s);
  p.validate(s.size());
  return p;
}

}  // namespace progdiff::group

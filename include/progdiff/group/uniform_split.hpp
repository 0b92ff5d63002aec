#pragma once
// UniformSplit: N groups of (nearly) equal timestep counts, group g = [floor(g T / N), floor((g+1) T / N)).
// The "Timestep" baseline of Table 4 of the multi-stage paper.
#include <cstdint>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/group/partition.hpp"

namespace progdiff::group {

struct UniformSplit {
  std::int64_t groups = 3;

  template <schedule::NoiseSchedule S>
  Partition group(const S& s) const {
    const std::int64_t n = s.size();
    require(groups >= 1 && groups <= n,
            "UniformSplit: group count must lie in [1, " + std::to_string(n) + "], got " + std::to_string(groups));
    Partition p;
    for (std::int64_t g = 0; g <= groups; ++g) p.starts.push_back(g * n / groups);
    return p;
  }
};

}  // namespace progdiff::group

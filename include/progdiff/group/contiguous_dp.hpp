#pragma once
// Exact optimum over contiguous partitions: of n ordered points into exactly N non-empty
// intervals, the one minimizing sum over intervals of cost(begin, end). Dynamic programming,
// O(N n^2) evaluations of cost (Bellman 1961, "On the approximation of curves by line segments").
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/group/partition.hpp"

namespace progdiff::group {

/// cost(b, e) is the cost of the interval [b, e); returns the optimal starts.
template <class Cost>
Partition min_cost_contiguous_partition(std::int64_t n, std::int64_t groups, Cost&& cost, const char* who) {
  require(groups >= 1 && groups <= n,
          std::string(who) + ": group count must lie in [1, " + std::to_string(n) + "], got " + std::to_string(groups));
  const double inf = std::numeric_limits<double>::infinity();
  const auto N = static_cast<std::size_t>(groups), len = static_cast<std::size_t>(n);
  // best[g][e]: least cost of the first e points in g + 1 intervals; from[g][e]: start of the last
  std::vector<std::vector<double>> best(N, std::vector<double>(len + 1, inf));
  std::vector<std::vector<std::int64_t>> from(N, std::vector<std::int64_t>(len + 1, 0));
  for (std::int64_t e = 1; e <= n; ++e) best[0][e] = cost(0, e);
  for (std::size_t g = 1; g < N; ++g)
    for (std::int64_t e = static_cast<std::int64_t>(g) + 1; e <= n; ++e)
      for (std::int64_t b = static_cast<std::int64_t>(g); b < e; ++b) {
        const double c = best[g - 1][b] + cost(b, e);
        if (c < best[g][e]) best[g][e] = c, from[g][e] = b;
      }
  Partition p;
  p.starts.assign(N + 1, 0);
  p.starts[N] = n;
  for (std::size_t g = N - 1; g > 0; --g) p.starts[g] = from[g][p.starts[g + 1]];
  return p;
}

}  // namespace progdiff::group

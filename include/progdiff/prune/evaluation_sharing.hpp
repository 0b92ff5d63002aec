#pragma once
// EvaluationSharing: how proxy_prune (proxy_pruning.hpp) shares the evaluations of each round
// among processes. By default one process evaluates every scheme. With several, rank 0 alone asks
// the proxy (an external proxy may not answer twice alike) and hands its proposals to the others,
// rank r evaluates the round's new schemes k with k % size == r, and the losses are gathered, so
// that every process adds the same entries to its bank in the same order and ends with the bank
// and the best scheme of a single process's search.
//
// It is a plain struct of a rank, a size and a sum over the processes, so the pruning code needs
// no communicator type: distributed/proxy_fan_out.hpp makes one from any communicator.
#include <functional>
#include <span>

namespace progdiff::prune {

struct EvaluationSharing {
  int rank = 0;
  int size = 1;
  /// Adds `values` element-wise over every process, in place, so that each one holds the sum (an
  /// all-reduce; collective: every process calls it with as many values). Unused when size is 1.
  std::function<void(std::span<double>)> sum_over_processes;

  bool shared() const { return size > 1; }
  bool evaluates(std::size_t k) const { return static_cast<int>(k % static_cast<std::size_t>(size)) == rank; }
};

}  // namespace progdiff::prune

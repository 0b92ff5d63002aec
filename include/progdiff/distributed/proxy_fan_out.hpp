#pragma once
// The proxy search's evaluations over ranks: prune::proxy_prune with an EvaluationSharing made
// from a communicator. Rank 0 asks the proxy, every rank evaluates its share of each round's new
// schemes (scheme k on rank k % size), and the losses are gathered with the communicator's
// all-reduce, so every rank ends with the bank and best scheme of a single-process search
// (tests/mpi/mpi_proxy_fan_out_test.cpp).
//
//   prune::MemoryBank bank = comm.rank() == 0 ? prune::MemoryBank::open(path, space) : prune::MemoryBank{};
//   auto result = prune::proxy_prune(space, proxy, evaluate, rounds, candidates, bank, "search",
//                                    distributed::share_evaluations(comm));
#include <span>

#include "progdiff/distributed/communicator.hpp"
#include "progdiff/prune/evaluation_sharing.hpp"

namespace progdiff::distributed {

/// The evaluation sharing of `comm`'s ranks; `comm` must outlive it.
template <Communicator C>
prune::EvaluationSharing share_evaluations(C& comm) {
  prune::EvaluationSharing sharing;
  sharing.rank = comm.rank();
  sharing.size = comm.size();
  if constexpr (!C::single_process)
    sharing.sum_over_processes = [&comm](std::span<double> values) { comm.all_reduce_host(values); };
  return sharing;
}

}  // namespace progdiff::distributed

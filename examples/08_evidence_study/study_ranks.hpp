#pragma once
// How the study's runs are shared among processes. The plain program runs them all itself. Its
// MPI build (progdiff_example_08_evidence_study_mpi, where MPI is installed), started by mpirun,
// gives run i of the study's order to rank i % size: runs are independent processes of the main
// job, each with its own seed and directory, so every run computes what it would in the serial
// study, and rank 0 alone writes the tables. Collective steps (all ranks call them in the same
// order) keep the ranks together where one must wait for another.
#include <functional>

#ifdef PROGDIFF_STUDY_OVER_MPI
#include "progdiff/distributed/mpi.hpp"
#endif

namespace study {

struct Ranks {
  int rank = 0;
  int size = 1;
  /// True on every rank when `flag` is true on any (collective; waits for every rank).
  std::function<bool(bool)> any = [](bool flag) { return flag; };

  bool owns(std::size_t run) const { return static_cast<int>(run % static_cast<std::size_t>(size)) == rank; }
  bool writes_tables() const { return rank == 0; }
};

#ifdef PROGDIFF_STUDY_OVER_MPI
/// The ranks of MPI_COMM_WORLD; `comm` must outlive the result.
inline Ranks mpi_ranks(progdiff::distributed::MpiCommunicator& comm) {
  Ranks r;
  r.rank = comm.rank();
  r.size = comm.size();
  r.any = [&comm](bool flag) { return progdiff::distributed::any_rank(comm, flag); };
  return r;
}
#endif

}  // namespace study

// doctest inside an MPI job: MPI lives for the whole run, rank 0 reports in full and the other
// ranks only their failures, and the job fails when any rank's tests fail.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "progdiff/distributed/communicator.hpp"
#include "progdiff/distributed/mpi.hpp"

int main(int argc, char** argv) {
  progdiff::distributed::MpiSession session(argc, argv);
  progdiff::distributed::MpiCommunicator comm;
  doctest::Context context(argc, argv);
  if (comm.rank() != 0) context.setOption("minimal", true);
  const int failed = context.run();
  if (context.shouldExit()) return failed;
  return progdiff::distributed::any_rank(comm, failed != 0) ? 1 : 0;
}

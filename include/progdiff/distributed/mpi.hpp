#pragma once
// MpiCommunicator: data-parallel training over MPI (OpenMPI from Debian: libopenmpi-dev) on the
// CPU back end. Link the program to MPI::MPI_CXX (CMake: find_package(MPI)) and start it with
// mpirun; each rank is one process with its own OpenMP threads.
//
//   int main(int argc, char** argv) {
//     progdiff::distributed::MpiSession session(argc, argv);
//     progdiff::distributed::MpiCommunicator comm;   // MPI_COMM_WORLD
//     return progdiff::distributed::run_or_abort(comm, [&] { /* train with comm */ });
//   }
//
// Failures: the communicator sets MPI_ERRORS_RETURN on its MPI communicator, so a failed call
// throws a CommunicationError naming the operation, the rank and MPI's own text instead of
// MPI's bare default abort. run_or_abort turns an exception on any rank into MPI_Abort with
// that rank's message, so one failing rank stops the whole job instead of leaving the others
// waiting in a collective forever. A rank killed outright (SIGKILL, out of memory) is detected
// by mpirun, which stops the other ranks and names the dead rank and its signal. A rank that
// hangs alive is caught only by the optional timeout: MpiCommunicator(MPI_COMM_WORLD, 600s).
//
// Without <mpi.h> on the include path this header declares MpiCommunicator as a type whose use
// fails to compile with a sentence saying what to link.
#include <cstdio>
#include <exception>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/distributed/communicator.hpp"

#if __has_include(<mpi.h>)
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <span>
#include <thread>

namespace progdiff::distributed {

/// MPI_Init_thread / MPI_Finalize for the lifetime of main's scope (funneled: only the main
/// thread calls MPI, while OpenMP threads compute).
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw CommunicationError("MpiSession: MPI_Init_thread failed");
    owner_ = true;
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owner_ && !finalized) MPI_Finalize();
  }

 private:
  bool owner_ = false;
};

class MpiCommunicator {
 public:
  static constexpr bool single_process = false;
  template <class B>
  static constexpr bool serves = B::host_accessible;  // MPI reads host memory

  /// Uses `comm` (not owned; MPI_COMM_WORLD by default); MPI must be initialized (MpiSession).
  /// With a timeout > 0 an exchange that has not completed after that long throws a
  /// CommunicationError (a rank hung without dying: MPI itself waits forever); 0 waits forever.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD, std::chrono::milliseconds timeout = {})
      : comm_(comm), timeout_(timeout) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    require(initialized != 0, "MpiCommunicator: MPI is not initialized; create an MpiSession in main first");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm handle() const { return comm_; }

  void all_reduce_sum(std::span<float> values) { reduce(values); }
  void all_reduce_sum(std::span<double> values) { reduce(values); }
  void all_reduce_host(std::span<double> values) { reduce(values); }
  void barrier() {
    if (timeout_.count() <= 0) {
      check(MPI_Barrier(comm_), "MPI_Barrier");
      return;
    }
    MPI_Request request;
    check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
    wait(request, "MPI_Barrier");
  }

 private:
  template <class T>
  void reduce(std::span<T> values) {
    const MPI_Datatype type = sizeof(T) == sizeof(float) ? MPI_FLOAT : MPI_DOUBLE;
    for (std::size_t done = 0; done < values.size();) {  // MPI counts are ints
      const std::size_t n = std::min(values.size() - done, static_cast<std::size_t>(INT_MAX));
      if (timeout_.count() <= 0) {
        check(MPI_Allreduce(MPI_IN_PLACE, values.data() + done, static_cast<int>(n), type, MPI_SUM, comm_),
              "MPI_Allreduce");
      } else {
        MPI_Request request;
        check(MPI_Iallreduce(MPI_IN_PLACE, values.data() + done, static_cast<int>(n), type, MPI_SUM, comm_, &request),
              "MPI_Iallreduce");
        wait(request, "MPI_Allreduce");
      }
      done += n;
    }
  }

  // Polls `request` until it completes or the timeout passes; spins first (exchanges are
  // usually short), then sleeps between polls so that a long wait leaves the cores to others.
  void wait(MPI_Request& request, const char* operation) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (long polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), operation);
      if (done) return;
      if (std::chrono::steady_clock::now() > deadline)
        throw CommunicationError(std::string(operation) + " on rank " + std::to_string(rank_) + " of " +
                                 std::to_string(size_) + ": not every rank took part within " +
                                 std::to_string(timeout_.count()) + " ms; a rank may have hung");
      if (polls > 10000) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  void check(int code, const char* operation) const {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw CommunicationError(std::string(operation) + " failed on rank " + std::to_string(rank_) + " of " +
                             std::to_string(size_) + ": " + std::string(text, static_cast<std::size_t>(length)));
  }

  MPI_Comm comm_;
  std::chrono::milliseconds timeout_;
  int rank_ = 0, size_ = 1;
};

/// Runs `body`; if it throws on this rank, prints "rank r of n stops the job: <what>" to stderr
/// and calls MPI_Abort, which ends every rank. Returns 0 when body returns.
template <class Body>
int run_or_abort(const MpiCommunicator& comm, Body&& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "progdiff: rank %d of %d stops the job: %s\n", comm.rank(), comm.size(), e.what());
  } catch (...) {
    std::fprintf(stderr, "progdiff: rank %d of %d stops the job: an unknown exception\n", comm.rank(), comm.size());
  }
  std::fflush(stderr);
  MPI_Abort(comm.handle(), 1);
  return 1;
}

}  // namespace progdiff::distributed

#else  // no <mpi.h>

namespace progdiff::distributed {

template <bool mpi_found = false>
struct MpiUnavailable {
  static_assert(mpi_found,
                "progdiff/distributed/mpi.hpp: <mpi.h> is not on the include path; link the target to MPI::MPI_CXX "
                "(find_package(MPI) in CMake; Debian package libopenmpi-dev) to use MpiCommunicator");
};
using MpiCommunicator = MpiUnavailable<>;
using MpiSession = MpiUnavailable<>;

}  // namespace progdiff::distributed

#endif

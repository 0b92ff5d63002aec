#pragma once
// Communicator: what the trainers (train/trainer.hpp) need from a group of processes that train
// one model together, data-parallel. A communicator is a type, so the single-process default
// (distributed/single_process.hpp) compiles every exchange away:
//
//   static constexpr bool single_process;   true: size() is 1 and nothing is ever exchanged
//   template <class B> static constexpr bool serves;  whether reductions take back end B's memory
//   int rank() const; int size() const;
//   void all_reduce_sum(std::span<float>);   // in place, in the memory of the back ends served
//   void all_reduce_sum(std::span<double>);
//   void all_reduce_host(std::span<double>); // in place, host memory (losses, status flags)
//   void barrier();
//
// Implementations: SingleProcess (single_process.hpp), MpiCommunicator (mpi.hpp, OpenMPI on the
// CPU back end) and NcclCommunicator (cuda/nccl.hpp, device memory of the CUDA back end).
// Every rank must make the same calls in the same order: they are collective.
#include <concepts>
#include <span>

#include "progdiff/core/error.hpp"

namespace progdiff::distributed {

/// A failed exchange between ranks; the message names the operation and the rank.
class CommunicationError : public Error {
 public:
  using Error::Error;
};

template <class C>
concept Communicator = requires(C& c, const C& cc, std::span<float> f, std::span<double> d) {
  { C::single_process } -> std::convertible_to<bool>;
  { cc.rank() } -> std::convertible_to<int>;
  { cc.size() } -> std::convertible_to<int>;
  c.all_reduce_sum(f);
  c.all_reduce_sum(d);
  c.all_reduce_host(d);
  c.barrier();
};

/// A communicator whose reductions can take tensors of back end B.
template <class C, class B>
concept CommunicatorFor = Communicator<C> && C::template serves<B>;

template <class C, class B>
constexpr bool check_communicator() {
  static_assert(Communicator<C>,
                "progdiff::distributed: a communicator needs static constexpr bool single_process, rank(), size(), "
                "all_reduce_sum(std::span<float | double>), all_reduce_host(std::span<double>) and barrier() (see "
                "progdiff/distributed/communicator.hpp)");
  if constexpr (Communicator<C>)
    static_assert(C::template serves<B>,
                  "progdiff::distributed: this communicator cannot reduce tensors of the model's back end (MPI takes "
                  "host memory: the CPU back end; NCCL takes CUDA device memory: the CUDA back end)");
  return true;
}

/// True on every rank when `failed` is true on any rank (a collective call).
template <Communicator C>
bool any_rank(C& comm, bool failed) {
  if constexpr (C::single_process) {
    return failed;
  } else {
    double flag[1] = {failed ? 1.0 : 0.0};
    comm.all_reduce_host(flag);
    return flag[0] > 0.0;
  }
}

}  // namespace progdiff::distributed

#pragma once
// SingleProcess: the communicator of a run in one process (the trainers' default). Its size is 1
// and its exchanges are no-ops; because single_process is a constant, the trainers compile
// their distributed paths out, so the default costs nothing.
#include <span>

namespace progdiff::distributed {

struct SingleProcess {
  static constexpr bool single_process = true;
  template <class B>
  static constexpr bool serves = true;

  int rank() const { return 0; }
  int size() const { return 1; }
  void all_reduce_sum(std::span<float>) {}
  void all_reduce_sum(std::span<double>) {}
  void all_reduce_host(std::span<double>) {}
  void barrier() {}
};

}  // namespace progdiff::distributed

#pragma once
// replicate_parameters: every rank's parameters become rank 0's, so a data-parallel run starts
// from one set of weights even if the ranks initialized theirs differently. Done with the
// communicator's sum (rank 0 contributes its values, the others zeros: x + 0 is exactly x), so a
// communicator needs no broadcast of its own; it runs once per run, not per step.
#include <span>
#include <string>
#include <type_traits>

#include "progdiff/distributed/communicator.hpp"

namespace progdiff::distributed {

/// Sets every parameter that `model.visit_parameters` visits to rank 0's value. A collective call.
template <Communicator C, class Model>
void replicate_parameters(C& comm, Model& model) {
  if constexpr (C::single_process) return;
  model.visit_parameters(
      [&](const std::string&, auto& p) {
        using Tensor = std::remove_cvref_t<decltype(p.value)>;
        using T = typename Tensor::value_type;
        using B = typename Tensor::backend_type;
        if (comm.rank() != 0) B::template fill<T>(p.value.data(), p.value.size(), T(0));
        comm.all_reduce_sum(std::span<T>(p.value.data(), p.value.size()));
      },
      std::string());
}

/// `value` as rank 0 has it, on every rank (a collective call).
template <Communicator C>
bool rank0_says(C& comm, bool value) {
  if constexpr (C::single_process) {
    return value;
  } else {
    double flag[1] = {comm.rank() == 0 && value ? 1.0 : 0.0};
    comm.all_reduce_host(flag);
    return flag[0] > 0.0;
  }
}

}  // namespace progdiff::distributed

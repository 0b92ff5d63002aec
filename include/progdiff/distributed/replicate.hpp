#pragma once
// replicate_parameters: every rank's parameters become rank 0's, so a data-parallel run starts
// from one set of weights even if the ranks initialized theirs differently (and
// replicate_random_state: rank 0's dropout seeds and mask counts). Done with the
// communicator's sum (rank 0 contributes its values, the others zeros: x + 0 is exactly x), so a
// communicator needs no broadcast of its own; it runs once per run, not per step.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

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

/// Sets every dropout layer's mask seed and count (visited with `model.visit_random_state`) to
/// rank 0's, so that the ranks draw one global batch's masks. A collective call. The host
/// exchange carries doubles: each 64-bit value travels as two exact 32-bit halves.
template <Communicator C, class Model>
void replicate_random_state(C& comm, Model& model) {
  if constexpr (C::single_process) return;
  std::vector<double> halves;
  auto split = [&](std::uint64_t v) {
    halves.push_back(comm.rank() == 0 ? static_cast<double>(v >> 32) : 0.0);
    halves.push_back(comm.rank() == 0 ? static_cast<double>(v & 0xffffffffu) : 0.0);
  };
  model.visit_random_state(
      [&](const std::string&, auto& dropout) {
        split(dropout.config().seed);
        split(dropout.calls());
      },
      std::string());
  comm.all_reduce_host(halves);
  std::size_t i = 0;
  auto join = [&] {
    const auto v = (static_cast<std::uint64_t>(halves[i]) << 32) | static_cast<std::uint64_t>(halves[i + 1]);
    i += 2;
    return v;
  };
  model.visit_random_state(
      [&](const std::string&, auto& dropout) {
        dropout.set_seed(join());
        dropout.set_calls(join());
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

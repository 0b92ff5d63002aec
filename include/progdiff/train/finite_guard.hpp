#pragma once
// A guard against a diverged step: checks the loss and every gradient for NaN or infinity before
// the optimizer (and so before any checkpoint) sees them, and throws NonFiniteError naming the
// step, the caller's group label and the first offending parameter. Catching it leaves the model,
// the optimizer and the last checkpoint as they were before the step.
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "progdiff/core/error.hpp"

namespace progdiff::train {

/// A loss or gradient that is NaN or infinite.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

/// Throws NonFiniteError unless `loss` and all gradients of `model` are finite.
template <class Model>
void check_finite(double loss, Model& model, std::int64_t step, const std::string& group) {
  const std::string where = "training step " + std::to_string(step) + " of group '" + group + "'";
  if (!std::isfinite(loss)) throw NonFiniteError(where + ": loss is " + std::to_string(loss));
  std::string bad;
  model.visit_parameters(
      [&](const std::string& name, auto& p) {
        using G = std::remove_cvref_t<decltype(p.grad)>;
        using T = typename G::value_type;
        using B = typename G::backend_type;
        if (bad.empty() && !B::template all_finite<T>(p.grad.size(), p.grad.data())) bad = name;
      },
      std::string());
  if (!bad.empty())
    throw NonFiniteError(where + ": gradient of parameter '" + bad +
                         "' holds NaN or infinity; the step was not applied and no checkpoint was written");
}

}  // namespace progdiff::train

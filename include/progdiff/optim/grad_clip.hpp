#pragma once
// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_ (norm_type 2): the L2 norm
// over all gradients together; when it exceeds max_norm, every gradient is scaled by
// max_norm / (norm + 1e-6).
#include <cmath>
#include <string>
#include <type_traits>

#include "progdiff/core/error.hpp"
#include "progdiff/nn/parameter.hpp"

namespace progdiff::optim {

/// The L2 norm of all gradients of `model` taken together.
template <class Model>
double gradient_norm(Model& model) {
  double squares = 0.0;
  model.visit_parameters(
      [&](const std::string&, auto& p) {
        using G = std::remove_cvref_t<decltype(p.grad)>;
        using T = typename G::value_type;
        using B = typename G::backend_type;
        squares += B::template dot<T>(p.grad.size(), p.grad.data(), p.grad.data());
      },
      std::string());
  return std::sqrt(squares);
}

/// Scales the gradients of `model` so that their global norm is at most `max_norm`; returns the
/// norm before clipping (which may be inf or NaN: the finite guard checks it).
template <class Model>
double clip_grad_norm(Model& model, double max_norm) {
  require(max_norm > 0.0, "clip_grad_norm: max_norm must be > 0, got " + std::to_string(max_norm));
  const double norm = gradient_norm(model);
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1.0) {
    model.visit_parameters(
        [&](const std::string&, auto& p) {
          using G = std::remove_cvref_t<decltype(p.grad)>;
          using T = typename G::value_type;
          using B = typename G::backend_type;
          B::template scale<T>(p.grad.size(), static_cast<T>(coefficient), p.grad.data());
        },
        std::string());
  }
  return norm;
}

}  // namespace progdiff::optim

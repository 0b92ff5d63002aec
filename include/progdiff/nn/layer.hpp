#pragma once
// What every layer provides. forward(x) keeps what backward needs; backward(dy) returns
// the input gradient (assigned, a fresh tensor) and accumulates parameter gradients, then
// drops what forward kept. A layer reports its FLOPs (multiply-add = 2) and parameter count
// for an input shape and names its channel axes for the pruner.
#include <concepts>
#include <cstdint>
#include <string>

#include "progdiff/core/tensor.hpp"
#include "progdiff/nn/parameter.hpp"

namespace progdiff::nn {

/// Visitor signature used by visit_parameters: f(name, parameter).
template <class T, class B>
using ParameterVisitor = void (*)(const std::string&, Parameter<T, B>&);

// clang-format off
/// Parameters and costs: every layer, unary or not.
template <class L>
concept LayerBase = requires(L& l, const L& cl, Shape s, ParameterVisitor<typename L::value_type, typename L::backend_type> f) {
  typename L::value_type;
  typename L::backend_type;
  { cl.output_shape(s) } -> std::same_as<Shape>;
  { cl.flops(s) } -> std::convertible_to<std::int64_t>;
  { cl.parameter_count() } -> std::convertible_to<std::int64_t>;
  l.visit_parameters(f, std::string());
};

/// A layer with one input and one output.
template <class L>
concept Layer = LayerBase<L> && requires(L& l, const Tensor<typename L::value_type, typename L::backend_type>& x) {
  { l.forward(x) } -> std::same_as<Tensor<typename L::value_type, typename L::backend_type>>;
  { l.backward(x) } -> std::same_as<Tensor<typename L::value_type, typename L::backend_type>>;
};
// clang-format on

template <class L>
constexpr bool check_layer() {
  static_assert(Layer<L>,
                "progdiff: this type is not a progdiff::nn::Layer; it needs value_type, backend_type, "
                "forward(x), backward(dy), output_shape, flops, parameter_count and visit_parameters "
                "(see progdiff/nn/layer.hpp)");
  return true;
}

/// Sum of the element counts of every parameter a layer visits.
template <class L>
std::int64_t count_parameters(L& layer) {
  std::int64_t n = 0;
  layer.visit_parameters([&](const std::string&, auto& p) { n += p.numel(); }, std::string());
  return n;
}

/// Zeroes every parameter gradient of a layer.
template <class L>
void zero_grad(L& layer) {
  layer.visit_parameters([](const std::string&, auto& p) { p.zero_grad(); }, std::string());
}

}  // namespace progdiff::nn

#pragma once
// Interchange between progdiff tensors and xtensor expressions, for host-side work a user
// writes with NumPy-style arrays (data preparation, metrics, analysis of model outputs).
//
//   as_xtensor(t)     zero-copy xtensor adaptor over a tensor whose memory the host can read
//                     (the CPU back end); writes through it change the tensor
//   to_xarray(t)      a copy of any tensor, from any back end, as xt::xarray<T>
//   from_xtensor<T, B>(e)  evaluates an xtensor expression into a new Tensor<T, B>
#include <cstddef>
#include <vector>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include "progdiff/core/tensor.hpp"

namespace progdiff::interop {

template <class T, class B>
auto as_xtensor(const Tensor<T, B>& tensor) {
  static_assert(B::host_accessible,
                "progdiff: as_xtensor needs a back end whose memory the host can read (backend::Cpu); "
                "use to_xarray to copy a device tensor to the host");
  std::vector<std::size_t> shape(tensor.shape().begin(), tensor.shape().end());
  return xt::adapt(tensor.data(), tensor.size(), xt::no_ownership(), shape);
}

template <class T, class B>
xt::xarray<T> to_xarray(const Tensor<T, B>& tensor) {
  std::vector<std::size_t> shape(tensor.shape().begin(), tensor.shape().end());
  xt::xarray<T> out = xt::xarray<T>::from_shape(shape);
  if (tensor.size()) B::template copy_to_host<T>(out.data(), tensor.data(), tensor.size());
  return out;
}

template <class T, class B, class E>
Tensor<T, B> from_xtensor(const xt::xexpression<E>& expression) {
  // Evaluate into a row-major host array first: the expression may be lazy or strided.
  const xt::xarray<T, xt::layout_type::row_major> values = expression.derived_cast();
  if (values.dimension() > static_cast<std::size_t>(Shape::kMaxRank))
    throw ShapeError("from_xtensor: rank " + std::to_string(values.dimension()) + " exceeds the maximum of " +
                     std::to_string(Shape::kMaxRank));
  const Shape shape(values.shape().begin(), values.shape().end());
  return Tensor<T, B>::from_host(shape, std::span<const T>(values.data(), values.size()));
}

}  // namespace progdiff::interop

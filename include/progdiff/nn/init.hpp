#pragma once
// Deterministic parameter initialization from a Philox generator, drawn on the host and
// copied to the back end, so every back end starts from the same weights.
#include <cmath>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"

namespace progdiff::nn {

/// U(-bound, bound), PyTorch's default for Conv2d and Linear is bound = 1 / sqrt(fan_in).
template <class T, class B>
void init_uniform(Tensor<T, B>& t, double bound, Generator& gen) {
  std::vector<T> host(t.size());
  for (auto& v : host) v = static_cast<T>(gen.uniform(-bound, bound));
  t = Tensor<T, B>::from_host(t.shape(), host);
}

template <class T, class B>
void init_constant(Tensor<T, B>& t, T value) {
  t.fill(value);
}

}  // namespace progdiff::nn

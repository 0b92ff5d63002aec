#pragma once
// The function distance D and similarity S of optimal denoisers, multi-stage paper sec. 4.2:
//   D(eps*_a, eps*_b, x0, eps) = (1/n) sum_i 1(|eps*_a(x_a) - eps*_b(x_b)|_i <= eta),
//   x_a = s_a x0 + s_a sigma_a eps (the same x0, eps at both times),
//   S(eps*_a, eps*_b) = E_{x0, eps}[D]  (eq. 5).
// D is the fraction of coordinates on which the two denoisers agree within eta, so it is a
// similarity in [0, 1] (1 = identical), despite the paper's name for it.
#include <cmath>
#include <cstdint>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/group/optimal_denoiser.hpp"

namespace progdiff::group {

/// D of eq. 5 for one pair of denoiser outputs of length n.
template <class T>
double function_distance(const T* a, const T* b, std::int64_t n, double eta) {
  std::int64_t agree = 0;
  for (std::int64_t i = 0; i < n; ++i) agree += std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])) <= eta;
  return static_cast<double>(agree) / static_cast<double>(n);
}

/// K draws (x0 = y_k, eps_k) with y_k from the data and eps_k ~ N(0, I), from `gen`.
template <class B, class T>
struct NoiseDraws {
  std::vector<T> y, eps;  // [K, d] each, on the host
  std::int64_t count = 0, dim = 0;

  NoiseDraws(const OptimalDenoiser<B, T>& denoiser, std::int64_t k, Generator& gen) : count(k), dim(denoiser.dim()) {
    y.resize(static_cast<std::size_t>(k * dim));
    eps.resize(y.size());
    for (std::int64_t r = 0; r < k; ++r) {
      const auto idx = static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(denoiser.points())));
      B::template copy_to_host<T>(y.data() + r * dim, denoiser.data().data() + idx * dim,
                                  static_cast<std::size_t>(dim));
      for (std::int64_t j = 0; j < dim; ++j) eps[r * dim + j] = gen.template normal<T>();
    }
  }

  /// Rows x = s y_k + s sigma eps_k for the listed draws at the listed noise levels.
  Tensor<T, B> noisy(const std::vector<std::int64_t>& draw, const std::vector<double>& scale,
                     const std::vector<double>& sigma) const {
    const auto m = static_cast<std::int64_t>(draw.size());
    std::vector<T> x(static_cast<std::size_t>(m * dim));
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t j = 0; j < dim; ++j) {
        const std::size_t src = static_cast<std::size_t>(draw[r] * dim + j);
        x[r * dim + j] = static_cast<T>(scale[r] * (static_cast<double>(y[src]) + sigma[r] * eps[src]));
      }
    return Tensor<T, B>::from_host(Shape{m, dim}, x);
  }
};

}  // namespace progdiff::group

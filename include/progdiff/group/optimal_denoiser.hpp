#pragma once
// OptimalDenoiser: the closed-form minimizer of the denoising loss over a finite data set,
// Prop. 1 eq. 4 of the multi-stage paper:
//   eps*(x; t) = (x - s_t sum_i w_i y_i) / (s_t sigma_t),
//   w = softmax_i(-|x - s_t y_i|^2 / (2 s_t^2 sigma_t^2)).
// Batched through B::gemm: squared distances as |x|^2 - 2 s x.y + s^2 |y|^2 with the cross term
// a GEMM X Y^T and the norms in double; logits and their log-sum-exp in double; the weighted
// mean a second GEMM W Y. On a back end whose memory the host cannot read and which has the
// kernels of DeviceOptimalDenoiser (the CUDA back end), the norms, the softmax and the final
// combination run there too, so nothing but the per-row noise levels crosses to the device.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "progdiff/backend/backend.hpp"
#include "progdiff/backend/math/optimal_denoiser.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/core/tensor.hpp"

namespace progdiff::group {

/// A back end with device kernels for the whole of eq. 4: squared row norms, the Gaussian
/// softmax over the data points, and the per-row weighted sum of the samplers.
template <class B, class T>
concept DeviceOptimalDenoiser =
    !B::host_accessible && requires(std::int64_t i, const T* cp, T* p, const double* cd, double* d) {
  B::template row_sq_norms<T>(i, i, cp, d);
  B::template gaussian_softmax_rows<T>(i, i, cd, cd, cd, p);
  B::template weighted_sum<T>(i, i, cd, std::array<const T*, B::sampler_terms>{}, p);
};

template <class B, class T = float>
class OptimalDenoiser {
  static_assert(check_backend<B>());

 public:
  /// data: [n, d], one data point y_i per row (kept by reference-counted sharing, not copied).
  explicit OptimalDenoiser(Tensor<T, B> data, std::int64_t block_rows = 128)
      : data_(std::move(data)), block_(block_rows) {
    if (data_.rank() != 2 || data_.dim(0) < 1 || data_.dim(1) < 1)
      throw ShapeError("OptimalDenoiser: data must be [n, d] with n, d >= 1, got " + data_.shape().str());
    require(block_rows >= 1, "OptimalDenoiser: block_rows must be >= 1");
    const std::int64_t n = points(), d = dim();
    if constexpr (DeviceOptimalDenoiser<B, T>) {
      device_norms_ = Tensor<double, B>(Shape{n});
      B::template row_sq_norms<T>(n, d, data_.data(), device_norms_.data());
      return;
    }
    norms_.resize(static_cast<std::size_t>(n));
    std::vector<T> row(static_cast<std::size_t>(d));
    for (std::int64_t i = 0; i < n; ++i) {
      B::template copy_to_host<T>(row.data(), data_.data() + i * d, row.size());
      double q = 0;
      for (T v : row) q += static_cast<double>(v) * static_cast<double>(v);
      norms_[static_cast<std::size_t>(i)] = q;
    }
  }

  std::int64_t points() const { return data_.dim(0); }
  std::int64_t dim() const { return data_.dim(1); }
  const Tensor<T, B>& data() const { return data_; }

  /// eps* for each row of x: [m, d], row r at noise level (scale[r], sigma[r]) of eq. 1.
  Tensor<T, B> operator()(const Tensor<T, B>& x, const std::vector<double>& scale,
                          const std::vector<double>& sigma) const {
    if (x.rank() != 2 || x.dim(1) != dim())
      throw ShapeError("OptimalDenoiser: x must be [m, " + std::to_string(dim()) + "], got " + x.shape().str());
    const std::int64_t m = x.dim(0);
    if (static_cast<std::int64_t>(scale.size()) != m || static_cast<std::int64_t>(sigma.size()) != m)
      throw ShapeError("OptimalDenoiser: " + std::to_string(m) + " rows need as many scales and sigmas, got " +
                       std::to_string(scale.size()) + " and " + std::to_string(sigma.size()));
    for (std::int64_t r = 0; r < m; ++r)
      require(scale[r] > 0 && sigma[r] > 0,
              "OptimalDenoiser: row " + std::to_string(r) + " needs scale > 0 and sigma > 0 (eq. 4 divides by both)");
    if constexpr (DeviceOptimalDenoiser<B, T>)
      return on_device(x, scale, sigma);
    else
      return on_host(x, scale, sigma);
  }

  /// The same noise level for every row.
  Tensor<T, B> operator()(const Tensor<T, B>& x, double scale, double sigma) const {
    const auto m = static_cast<std::size_t>(x.rank() == 2 ? x.dim(0) : 0);
    return (*this)(x, std::vector<double>(m, scale), std::vector<double>(m, sigma));
  }

 private:
  Tensor<T, B> on_device(const Tensor<T, B>& x, const std::vector<double>& scale,
                         const std::vector<double>& sigma) const {
    const std::int64_t m = x.dim(0), n = points(), d = dim();
    constexpr int terms = B::sampler_terms;
    // eps* = x / (s sigma) - mean / sigma, through the samplers' per-row weighted sum
    std::vector<double> scale_sigma(static_cast<std::size_t>(2 * m)), combine(static_cast<std::size_t>(terms * m));
    for (std::int64_t r = 0; r < m; ++r) {
      scale_sigma[2 * r] = scale[r];
      scale_sigma[2 * r + 1] = sigma[r];
      combine[terms * r] = 1.0 / (scale[r] * sigma[r]);
      combine[terms * r + 1] = -1.0 / sigma[r];
    }
    const auto levels = Tensor<double, B>::from_host(Shape{m, 2}, scale_sigma);
    const auto weights = Tensor<double, B>::from_host(Shape{m, terms}, combine);
    Tensor<double, B> xx(Shape{m});
    B::template row_sq_norms<T>(m, d, x.data(), xx.data());
    Tensor<T, B> out(x.shape());
    const std::int64_t rows = std::min(block_, std::max<std::int64_t>(m, 1));
    Tensor<T, B> dots(Shape{rows, n}), mean(Shape{rows, d});
    for (std::int64_t r0 = 0; r0 < m; r0 += rows) {
      const std::int64_t mb = std::min(rows, m - r0);
      B::template gemm<T>(Trans::No, Trans::Yes, mb, n, d, T(1), x.data() + r0 * d, d, data_.data(), d, T(0),
                          dots.data(), n);
      B::template gaussian_softmax_rows<T>(mb, n, xx.data() + r0, levels.data() + 2 * r0, device_norms_.data(),
                                           dots.data());
      B::template gemm<T>(Trans::No, Trans::No, mb, d, n, T(1), dots.data(), n, data_.data(), d, T(0), mean.data(), d);
      std::array<const T*, terms> parts{};
      parts[0] = x.data() + r0 * d;
      parts[1] = mean.data();
      B::template weighted_sum<T>(mb, d, weights.data() + terms * r0, parts, out.data() + r0 * d);
    }
    return out;
  }

  Tensor<T, B> on_host(const Tensor<T, B>& x, const std::vector<double>& scale,
                       const std::vector<double>& sigma) const {
    const std::int64_t m = x.dim(0), n = points(), d = dim();
    Tensor<T, B> out(x.shape());
    const std::int64_t rows = std::min(block_, std::max<std::int64_t>(m, 1));
    Tensor<T, B> dots(Shape{rows, n}), mean(Shape{rows, d});
    std::vector<T> host_dots(static_cast<std::size_t>(rows * n)), host_x(static_cast<std::size_t>(rows * d)),
        host_mean(static_cast<std::size_t>(rows * d));
    for (std::int64_t r0 = 0; r0 < m; r0 += rows) {
      const std::int64_t mb = std::min(rows, m - r0);
      // dots[r, i] = x_r . y_i
      B::template gemm<T>(Trans::No, Trans::Yes, mb, n, d, T(1), x.data() + r0 * d, d, data_.data(), d, T(0),
                          dots.data(), n);
      B::template copy_to_host<T>(host_dots.data(), dots.data(), static_cast<std::size_t>(mb * n));
      B::template copy_to_host<T>(host_x.data(), x.data() + r0 * d, static_cast<std::size_t>(mb * d));
      // Rows are independent: one thread each, with its own logit buffer. Each weight takes
      // one exp; the normalizing sum is accumulated in double.
#pragma omp parallel for schedule(dynamic, 1) if (mb > 1)
      for (std::int64_t r = 0; r < mb; ++r) {
        std::vector<double>& logit = logit_buffer();
        logit.resize(static_cast<std::size_t>(n));
        const double s = scale[r0 + r], sg = sigma[r0 + r];
        double xx = 0;
        for (std::int64_t j = 0; j < d; ++j) xx += static_cast<double>(host_x[r * d + j]) * host_x[r * d + j];
        const double inv = 1.0 / (2.0 * s * s * sg * sg);
        double top = -std::numeric_limits<double>::infinity();
        for (std::int64_t i = 0; i < n; ++i) {
          logit[i] = math::gaussian_logit(xx, host_dots[r * n + i], norms_[i], s, inv);
          top = std::max(top, logit[i]);
        }
        double total = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          logit[i] = std::exp(logit[i] - top);
          total += logit[i];
        }
        const double norm = 1.0 / total;
        for (std::int64_t i = 0; i < n; ++i) host_dots[r * n + i] = static_cast<T>(logit[i] * norm);
      }
      B::template copy_from_host<T>(dots.data(), host_dots.data(), static_cast<std::size_t>(mb * n));
      // mean[r, :] = sum_i w[r, i] y_i
      B::template gemm<T>(Trans::No, Trans::No, mb, d, n, T(1), dots.data(), n, data_.data(), d, T(0), mean.data(), d);
      B::template copy_to_host<T>(host_mean.data(), mean.data(), static_cast<std::size_t>(mb * d));
      for (std::int64_t r = 0; r < mb; ++r) {
        const double s = scale[r0 + r], inv = 1.0 / (s * sigma[r0 + r]);
        for (std::int64_t j = 0; j < d; ++j)
          host_mean[r * d + j] =
              static_cast<T>((static_cast<double>(host_x[r * d + j]) - s * host_mean[r * d + j]) * inv);
      }
      B::template copy_from_host<T>(out.data() + r0 * d, host_mean.data(), static_cast<std::size_t>(mb * d));
    }
    return out;
  }

  static std::vector<double>& logit_buffer() {
    thread_local std::vector<double> buffer;
    return buffer;
  }

  Tensor<T, B> data_;
  std::int64_t block_;
  std::vector<double> norms_;       // |y_i|^2 on the host path
  Tensor<double, B> device_norms_;  // |y_i|^2 on the device path
};

}  // namespace progdiff::group

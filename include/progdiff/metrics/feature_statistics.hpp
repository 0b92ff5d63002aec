#pragma once
// FeatureStatistics: the mean and covariance of feature vectors, accumulated batch by batch in
// double, the statistics a Frechet distance compares (Heusel et al. 2017, the mu and Sigma of
// eq. 6). Batches are merged with the pairwise update of Chan, Golub & LeVeque (1979): each batch's
// own mean and scatter matrix, then a rank-one correction for the shift of the means, so the result
// equals a one-pass computation over all rows without the cancellation of sum(x x^T) - n mu mu^T.
// The covariance is the unbiased one (divided by n - 1), as numpy.cov and pytorch-fid compute it.
#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/tensor.hpp"

// FeatureStatistics holds Eigen matrices that the precompiled component allocates and the
// program frees, and Eigen's allocation scheme depends on EIGEN_MAX_ALIGN_BYTES, which -march
// sets. The component defines a symbol named after its value and every unit that links it
// refers to the name of its own, so a program compiled for another CPU fails to link, naming
// the value, instead of corrupting the heap at run time (build both with the same -march).
#define PROGDIFF_EIGEN_ALIGN_SYMBOL_(bytes) progdiff_precompiled_built_with_eigen_max_align_bytes_##bytes
#define PROGDIFF_EIGEN_ALIGN_SYMBOL(bytes) PROGDIFF_EIGEN_ALIGN_SYMBOL_(bytes)
#if PROGDIFF_PRECOMPILED
extern "C" const int PROGDIFF_EIGEN_ALIGN_SYMBOL(EIGEN_MAX_ALIGN_BYTES);
namespace progdiff::metrics::detail {
__attribute__((used)) static const int* const eigen_alignment_check =
    &PROGDIFF_EIGEN_ALIGN_SYMBOL(EIGEN_MAX_ALIGN_BYTES);
}  // namespace progdiff::metrics::detail
#endif

namespace progdiff::metrics {

class FeatureStatistics {
 public:
  FeatureStatistics() = default;
  explicit FeatureStatistics(std::int64_t dim)
      : mean_(Eigen::VectorXd::Zero(dim)), scatter_(Eigen::MatrixXd::Zero(dim, dim)) {
    require(dim > 0, "FeatureStatistics: the feature dimension must be positive, got " + std::to_string(dim));
  }

  /// Adds `rows` feature vectors stored row-major in `values` (rows x dim()).
  template <class T>
  void add(std::span<const T> values, std::int64_t rows) {
    require<ShapeError>(rows >= 0 && static_cast<std::int64_t>(values.size()) == rows * dim(),
                        "FeatureStatistics::add: " + std::to_string(values.size()) + " values are not " +
                            std::to_string(rows) + " rows of dimension " + std::to_string(dim()));
    if (rows == 0) return;
    const std::int64_t d = dim();
    Eigen::MatrixXd x(rows, d);
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < d; ++j) x(i, j) = static_cast<double>(values[static_cast<std::size_t>(i * d + j)]);
    const Eigen::VectorXd batch_mean = x.colwise().mean().transpose();
    x.rowwise() -= batch_mean.transpose();
    Eigen::MatrixXd batch_scatter = Eigen::MatrixXd::Zero(d, d);
    batch_scatter.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
    batch_scatter = batch_scatter.selfadjointView<Eigen::Lower>();
    // Chan et al.: M = M_a + M_b + delta delta^T n_a n_b / n.
    const double na = static_cast<double>(count_), nb = static_cast<double>(rows), n = na + nb;
    const Eigen::VectorXd delta = batch_mean - mean_;
    scatter_ += batch_scatter + delta * delta.transpose() * (na * nb / n);
    mean_ += delta * (nb / n);
    count_ += rows;
  }

  /// Adds the rows of a feature tensor [N, dim()] (copied to the host).
  template <class T, class B>
  void add(const Tensor<T, B>& features) {
    if (features.rank() != 2 || features.dim(1) != dim())
      throw ShapeError("FeatureStatistics::add: got features of shape " + features.shape().str() + ", expected [N, " +
                       std::to_string(dim()) + "]");
    const std::vector<T> host = features.to_host();
    add(std::span<const T>(host.data(), host.size()), features.dim(0));
  }

  std::int64_t dim() const { return mean_.size(); }
  std::int64_t count() const { return count_; }
  const Eigen::VectorXd& mean() const { return mean_; }

  /// The unbiased covariance; a ConfigError below two samples, where it is undefined.
  Eigen::MatrixXd covariance() const {
    require(count_ >= 2, "FeatureStatistics: a covariance needs at least 2 samples, got " + std::to_string(count_));
    return scatter_ / static_cast<double>(count_ - 1);
  }

 private:
  Eigen::VectorXd mean_;
  Eigen::MatrixXd scatter_;  // sum over samples of (x - mean)(x - mean)^T
  std::int64_t count_ = 0;
};

}  // namespace progdiff::metrics

#pragma once
// The Frechet distance between two Gaussians N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982),
// the formula of FID (Heusel et al. 2017, eq. 6):
//   d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).
// Tr (S1 S2)^(1/2) is computed from the symmetric matrix M = S1^(1/2) S2 S1^(1/2): M is similar to
// S1 S2 (M = S1^(1/2) (S1 S2) S1^(-1/2) when S1 is invertible, and by continuity otherwise), so
// both have the same eigenvalues, all real and >= 0, and Tr (S1 S2)^(1/2) = sum_i sqrt(lambda_i(M)).
// Two symmetric eigen-decompositions (Eigen's SelfAdjointEigenSolver) replace the general matrix
// square root of scipy.linalg.sqrtm that pytorch-fid uses: no complex parts to discard, no eps added
// to the diagonal when S1 S2 is singular, and eigenvalues that rounding pushed below zero are
// clamped to zero, the value they approximate for a positive semi-definite matrix.
// The functions are templates (of nothing, or of the statistics type) only so that a program
// compiles Eigen's solvers where it calls them, not wherever it includes this header.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <concepts>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/metrics/feature_statistics.hpp"

namespace progdiff::metrics {

namespace detail {

inline std::string matrix_shape(const Eigen::MatrixXd& m) {
  // Appended piece by piece: GCC 12 misreads "literal" + std::string&& as an overlapping copy (-Wrestrict).
  std::string s(1, '[');
  s += std::to_string(m.rows());
  s += ", ";
  s += std::to_string(m.cols());
  s += ']';
  return s;
}

// The square root of a symmetric positive semi-definite matrix through its eigen-decomposition.
template <class = void>
Eigen::MatrixXd symmetric_sqrt(const Eigen::MatrixXd& s) {
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(s);
  if (eig.info() != Eigen::Success) throw ConfigError("frechet_distance: the eigen-decomposition did not converge");
  const Eigen::VectorXd root = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return eig.eigenvectors() * root.asDiagonal() * eig.eigenvectors().transpose();
}

}  // namespace detail

/// Tr (S1 S2)^(1/2) for symmetric positive semi-definite S1, S2 of equal size.
template <class = void>
double trace_sqrt_product(const Eigen::MatrixXd& s1, const Eigen::MatrixXd& s2) {
  const Eigen::MatrixXd root1 = detail::symmetric_sqrt<>(s1);
  Eigen::MatrixXd m = root1 * s2 * root1;
  m = 0.5 * (m + m.transpose());  // exact symmetry for the solver
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m, Eigen::EigenvaluesOnly);
  if (eig.info() != Eigen::Success) throw ConfigError("frechet_distance: the eigen-decomposition did not converge");
  return eig.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
}

/// The squared Frechet distance between N(mu1, s1) and N(mu2, s2). A ShapeError names the operands
/// whose sizes disagree.
template <class = void>
double frechet_distance(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& s1, const Eigen::VectorXd& mu2,
                        const Eigen::MatrixXd& s2) {
  const auto d = mu1.size();
  if (d == 0) throw ShapeError("frechet_distance: the means are empty");
  if (mu2.size() != d)
    throw ShapeError("frechet_distance: mean 1 has " + std::to_string(d) + " entries, mean 2 has " +
                     std::to_string(mu2.size()));
  if (s1.rows() != d || s1.cols() != d)
    throw ShapeError("frechet_distance: covariance 1 has shape " + detail::matrix_shape(s1) + ", expected [" +
                     std::to_string(d) + ", " + std::to_string(d) + "]");
  if (s2.rows() != d || s2.cols() != d)
    throw ShapeError("frechet_distance: covariance 2 has shape " + detail::matrix_shape(s2) + ", expected [" +
                     std::to_string(d) + ", " + std::to_string(d) + "]");
  return (mu1 - mu2).squaredNorm() + s1.trace() + s2.trace() - 2.0 * trace_sqrt_product<>(s1, s2);
}

/// The squared Frechet distance between the Gaussians fitted to two feature sets; each needs at
/// least two samples (ConfigError) and both the same dimension (ShapeError).
template <std::same_as<FeatureStatistics> Statistics>
double frechet_distance(const Statistics& a, const Statistics& b) {
  if (a.dim() != b.dim())
    throw ShapeError("frechet_distance: feature dimensions differ (" + std::to_string(a.dim()) + " and " +
                     std::to_string(b.dim()) + ")");
  return frechet_distance<>(a.mean(), a.covariance(), b.mean(), b.covariance());
}

}  // namespace progdiff::metrics

#if PROGDIFF_PRECOMPILED
namespace progdiff::metrics {
extern template double trace_sqrt_product<>(const Eigen::MatrixXd&, const Eigen::MatrixXd&);
extern template double frechet_distance<>(const Eigen::VectorXd&, const Eigen::MatrixXd&, const Eigen::VectorXd&,
                                          const Eigen::MatrixXd&);
extern template double frechet_distance(const FeatureStatistics&, const FeatureStatistics&);
}  // namespace progdiff::metrics
#endif

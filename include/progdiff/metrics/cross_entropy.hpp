#pragma once
// Softmax cross-entropy over class logits, as torch.nn.functional.cross_entropy(logits, labels)
// with reduction="mean":
//   L = -(1 / N) sum_i log softmax(z_i)[y_i],   dL/dz_ij = (softmax(z_i)_j - [j == y_i]) / N.
// The logits are [N, K] with K the few classes of a classifier: they are copied to the host and the
// loss is evaluated there in double with a log-sum-exp, so it stays finite for any logit range; the
// gradient is copied back to the back end.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/tensor.hpp"

namespace progdiff::metrics {

template <class T, class B>
struct CrossEntropyResult {
  double loss = 0.0;         // the mean over the batch
  std::int64_t correct = 0;  // samples whose largest logit is their label's
  Tensor<T, B> grad;         // [N, K] dL/dlogits
};

/// The index of the largest entry of each row of `logits` [N, K] (the first one on ties).
template <class T, class B>
std::vector<std::int64_t> argmax_rows(const Tensor<T, B>& logits) {
  if (logits.rank() != 2 || logits.dim(1) < 1)
    throw ShapeError("argmax_rows: expected logits of shape [N, K], got " + logits.shape().str());
  const std::vector<T> z = logits.to_host();
  const std::int64_t n = logits.dim(0), k = logits.dim(1);
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto row = z.begin() + i * k;
    out[static_cast<std::size_t>(i)] = std::max_element(row, row + k) - row;
  }
  return out;
}

/// The mean cross-entropy of `logits` [N, K] against integer `labels` in [0, K), its gradient and
/// the count of correct predictions. A ShapeError for a label count other than N, a ConfigError
/// naming the sample for a label outside [0, K).
template <class T, class B>
CrossEntropyResult<T, B> softmax_cross_entropy(const Tensor<T, B>& logits, std::span<const std::int64_t> labels) {
  if (logits.rank() != 2 || logits.dim(0) < 1 || logits.dim(1) < 1)
    throw ShapeError("softmax_cross_entropy: expected logits of shape [N, K] with N, K >= 1, got " +
                     logits.shape().str());
  const std::int64_t n = logits.dim(0), k = logits.dim(1);
  if (static_cast<std::int64_t>(labels.size()) != n)
    throw ShapeError("softmax_cross_entropy: " + std::to_string(labels.size()) + " labels for logits of shape " +
                     logits.shape().str());
  const std::vector<T> z = logits.to_host();
  std::vector<T> grad(z.size());
  CrossEntropyResult<T, B> r;
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t y = labels[static_cast<std::size_t>(i)];
    if (y < 0 || y >= k)
      throw ConfigError("softmax_cross_entropy: label " + std::to_string(y) + " of sample " + std::to_string(i) +
                        " is outside [0, " + std::to_string(k) + ")");
    const T* row = z.data() + i * k;
    const std::int64_t best = std::max_element(row, row + k) - row;
    const double top = static_cast<double>(row[best]);
    double sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(row[j]) - top);
    const double log_norm = top + std::log(sum);
    total += log_norm - static_cast<double>(row[y]);
    if (best == y) ++r.correct;
    for (std::int64_t j = 0; j < k; ++j) {
      const double p = std::exp(static_cast<double>(row[j]) - log_norm);
      grad[static_cast<std::size_t>(i * k + j)] = static_cast<T>((p - (j == y ? 1.0 : 0.0)) / static_cast<double>(n));
    }
  }
  r.loss = total / static_cast<double>(n);
  r.grad = Tensor<T, B>::from_host(logits.shape(), grad);
  return r;
}

}  // namespace progdiff::metrics

#pragma once
// SnrSpreadSplit: the N contiguous groups that minimize the within-group spread of SNR in dB
// (eq. 7 of the Step-Adaptive paper), i.e. the sum over groups of squared deviations from the
// group mean -- one-dimensional k-means restricted to contiguous groups, solved exactly by
// dynamic programming with prefix sums.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "progdiff/group/contiguous_dp.hpp"
#include "progdiff/schedule/quantities.hpp"

namespace progdiff::group {

/// Sum of squared deviations from the mean of x[b, e), from prefix sums of x and x^2
/// (values centred first so the subtraction keeps its digits).
class SquaredDeviation {
 public:
  explicit SquaredDeviation(const std::vector<double>& x) : sum_(x.size() + 1, 0.0), sq_(x.size() + 1, 0.0) {
    double mean = 0;
    for (double v : x) mean += v;
    if (!x.empty()) mean /= static_cast<double>(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double v = x[i] - mean;
      sum_[i + 1] = sum_[i] + v;
      sq_[i + 1] = sq_[i] + v * v;
    }
  }
  double operator()(std::int64_t b, std::int64_t e) const {
    const double s = sum_[e] - sum_[b], q = sq_[e] - sq_[b];
    return std::max(0.0, q - s * s / static_cast<double>(e - b));
  }

 private:
  std::vector<double> sum_, sq_;
};

struct SnrSpreadSplit {
  std::int64_t groups = 3;

  template <schedule::NoiseSchedule S>
  Partition group(const S& s) const {
    std::vector<double> snr(static_cast<std::size_t>(s.size()));
    for (std::int64_t i = 0; i < s.size(); ++i) snr[i] = schedule::snr_db(s, i);
    return min_cost_contiguous_partition(s.size(), groups, SquaredDeviation(snr), "SnrSpreadSplit");
  }
};

}  // namespace progdiff::group

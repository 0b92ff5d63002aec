#pragma once
// Storage shared by the built-in schedules: ln alpha-bar, ln s_t and ln sigma_t per grid point,
// kept in logarithms so alpha-bar near 1 (and 1 - alpha-bar near 0) keeps its precision over
// 4000 cosine steps.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/schedule/quantities.hpp"

namespace progdiff::schedule {

class Tabulated {
 public:
  std::int64_t size() const { return static_cast<std::int64_t>(time_.size()); }
  double time(std::int64_t i) const { return time_[at(i)]; }
  double alpha_bar(std::int64_t i) const { return std::exp(log_alpha_bar_[at(i)]); }
  /// 1 - alpha-bar without cancellation.
  double one_minus_alpha_bar(std::int64_t i) const { return -std::expm1(log_alpha_bar_[at(i)]); }
  double scale(std::int64_t i) const { return std::exp(log_scale_[at(i)]); }
  double sigma(std::int64_t i) const { return std::exp(log_sigma_[at(i)]); }
  /// Per-step alpha_t = alpha-bar_t / alpha-bar_{t-1}; beta_t = 1 - alpha_t.
  double alpha(std::int64_t i) const {
    return std::exp(log_alpha_bar_[at(i)] - (i == 0 ? 0.0 : log_alpha_bar_[at(i - 1)]));
  }
  double beta(std::int64_t i) const {
    return -std::expm1(log_alpha_bar_[at(i)] - (i == 0 ? 0.0 : log_alpha_bar_[at(i - 1)]));
  }
  double log_snr(std::int64_t i) const { return -2.0 * log_sigma_[at(i)]; }
  double snr_db(std::int64_t i) const { return -20.0 * log_sigma_[at(i)] / std::log(10.0); }

 protected:
  /// Appends a grid point of a variance-preserving kernel: s = sqrt(alpha-bar),
  /// sigma = sqrt((1 - alpha-bar) / alpha-bar).
  void push_vp(double t, double log_alpha_bar) {
    time_.push_back(t);
    log_alpha_bar_.push_back(log_alpha_bar);
    log_scale_.push_back(0.5 * log_alpha_bar);
    log_sigma_.push_back(0.5 * (std::log(-std::expm1(log_alpha_bar)) - log_alpha_bar));
  }
  /// Appends a grid point of a variance-exploding kernel: s = 1, alpha-bar = 1 / (1 + sigma^2).
  void push_ve(double t, double sigma) {
    time_.push_back(t);
    log_alpha_bar_.push_back(-std::log1p(sigma * sigma));
    log_scale_.push_back(0.0);
    log_sigma_.push_back(std::log(sigma));
  }
  void clear() {
    time_.clear();
    log_alpha_bar_.clear();
    log_scale_.clear();
    log_sigma_.clear();
  }

 private:
  std::size_t at(std::int64_t i) const {
    if (i < 0 || i >= size())
      throw ConfigError("schedule: grid index " + std::to_string(i) + " outside [0, " + std::to_string(size()) + ")");
    return static_cast<std::size_t>(i);
  }

  std::vector<double> time_, log_alpha_bar_, log_scale_, log_sigma_;
};

}  // namespace progdiff::schedule

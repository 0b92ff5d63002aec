#pragma once
// Exponential moving average of a model's weights (Polyak averaging, as diffusers' EMAModel):
//   ema <- d ema + (1 - d) param,  d = min(decay, warm-up(n)), n = updates already made
// Warm-up of the decay keeps the average from being dominated by the random initial weights:
//   none    d = decay
//   simple  (1 + n) / (10 + n)                     (diffusers, use_ema_warmup = False)
//   power   1 - (1 + n / inv_gamma)^(-power)       (diffusers, use_ema_warmup = True)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/nn/parameter.hpp"

namespace progdiff::optim {

enum class EmaWarmup { None, Simple, Power };

struct EmaConfig {
  double decay = 0.9999;
  EmaWarmup warmup = EmaWarmup::None;
  double inv_gamma = 1.0;  // power warm-up
  double power = 2.0 / 3.0;
};

template <class T, class B>
class Ema {
 public:
  explicit Ema(EmaConfig config = {}) : config_(config) {
    require(config.decay >= 0 && config.decay <= 1, "Ema: decay must lie in [0, 1]");
    require(config.inv_gamma > 0 && config.power > 0, "Ema: inv_gamma and power must be > 0");
  }

  /// Copies the current weights of `model` as the starting average (as EMAModel's constructor).
  template <class Model>
  void initialize(Model& model) {
    shadow_.clear();
    updates_ = 0;
    model.visit_parameters([&](const std::string& name, nn::Parameter<T, B>& p) { shadow_[name] = p.value.clone(); },
                           std::string());
  }

  /// The decay of the update after `n` updates.
  double decay_at(std::int64_t n) const {
    const double k = static_cast<double>(n);
    double d = config_.decay;
    if (config_.warmup == EmaWarmup::Simple) d = std::min(d, (1.0 + k) / (10.0 + k));
    if (config_.warmup == EmaWarmup::Power)
      d = std::min(d, 1.0 - std::pow(1.0 + k / config_.inv_gamma, -config_.power));
    return std::max(d, 0.0);
  }

  /// Moves the average towards the current weights of `model`.
  template <class Model>
  void update(Model& model) {
    const double d = decay_at(updates_);
    model.visit_parameters(
        [&](const std::string& name, nn::Parameter<T, B>& p) {
          auto it = shadow_.find(name);
          if (it == shadow_.end())
            throw ConfigError("Ema::update: parameter '" + name + "' has no average; call initialize(model) first");
          expect_shape(it->second.shape(), p.value.shape(), "Ema::update: parameter '" + name + "'");
          B::template scale<T>(p.value.size(), static_cast<T>(d), it->second.data());
          B::template axpy<T>(p.value.size(), static_cast<T>(1.0 - d), p.value.data(), it->second.data());
        },
        std::string());
    ++updates_;
  }

  /// Writes the averaged weights into `model` (for evaluation or export).
  template <class Model>
  void copy_to(Model& model) const {
    model.visit_parameters(
        [&](const std::string& name, nn::Parameter<T, B>& p) {
          auto it = shadow_.find(name);
          if (it == shadow_.end()) throw ConfigError("Ema::copy_to: no average for parameter '" + name + "'");
          p.value.copy_from(it->second);
        },
        std::string());
  }

  const EmaConfig& config() const { return config_; }
  std::int64_t update_count() const { return updates_; }
  void set_update_count(std::int64_t n) {
    require(n >= 0, "Ema: update count must be >= 0");
    updates_ = n;
  }
  const std::map<std::string, Tensor<T, B>>& shadow() const { return shadow_; }
  std::map<std::string, Tensor<T, B>>& shadow() { return shadow_; }

 private:
  EmaConfig config_;
  std::int64_t updates_ = 0;
  std::map<std::string, Tensor<T, B>> shadow_;
};

}  // namespace progdiff::optim

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::optim {
extern template class Ema<float, backend::Cpu>;
}  // namespace progdiff::optim
#endif

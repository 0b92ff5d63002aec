#pragma once
// AdamW over the parameters of any model with visit_parameters (Loshchilov & Hutter 2019, as
// torch.optim.AdamW): decoupled weight decay, bias-corrected first and second moments. The
// moments m and v are kept per parameter name, so a checkpoint can store and restore them, and
// the step count is shared by every parameter as in torch. The learning rate is passed to each
// step, so a schedule (lr_schedule.hpp) drives it from outside.
#include <cstdint>
#include <map>
#include <string>

#include "progdiff/backend/math/adam.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/nn/parameter.hpp"

namespace progdiff::optim {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // torch.optim.AdamW's default
};

template <class T, class B>
class AdamW {
 public:
  struct Moments {
    Tensor<T, B> m, v;
  };

  explicit AdamW(AdamWConfig config = {}) : config_(config) {
    require(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 >= 0 && config.beta2 < 1,
            "AdamW: betas must lie in [0, 1)");
    require(config.eps >= 0 && config.weight_decay >= 0, "AdamW: eps and weight_decay must be >= 0");
  }

  /// One update of every parameter of `model` from its accumulated gradient, at learning rate `lr`.
  template <class Model>
  void step(Model& model, double lr) {
    ++step_;
    const math::AdamHyper hyper{lr, config_.beta1, config_.beta2, config_.eps, config_.weight_decay};
    model.visit_parameters(
        [&](const std::string& name, nn::Parameter<T, B>& p) {
          Moments& s = moments_for(name, p.value.shape());
          B::template adamw<T>(p.value.size(), p.value.data(), p.grad.data(), s.m.data(), s.v.data(), hyper,
                               static_cast<long long>(step_));
        },
        std::string());
  }

  const AdamWConfig& config() const { return config_; }
  std::int64_t step_count() const { return step_; }
  void set_step_count(std::int64_t step) {
    require(step >= 0, "AdamW: step count must be >= 0, got " + std::to_string(step));
    step_ = step;
  }
  const std::map<std::string, Moments>& moments() const { return moments_; }
  std::map<std::string, Moments>& moments() { return moments_; }

 private:
  Moments& moments_for(const std::string& name, const Shape& shape) {
    auto it = moments_.find(name);
    if (it == moments_.end())
      it = moments_.emplace(name, Moments{Tensor<T, B>::zeros(shape), Tensor<T, B>::zeros(shape)}).first;
    else
      expect_shape(it->second.m.shape(), shape, "AdamW: moments of parameter '" + name + "'");
    return it->second;
  }

  AdamWConfig config_;
  std::int64_t step_ = 0;
  std::map<std::string, Moments> moments_;
};

}  // namespace progdiff::optim

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::optim {
extern template class AdamW<float, backend::Cpu>;
}  // namespace progdiff::optim
#endif

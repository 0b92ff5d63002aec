#pragma once
// Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1,
// deterministic: S_churn = 0), as diffusers' HeunDiscreteScheduler lays it out: two model
// evaluations per step, the Euler predictor and the trapezoidal corrector,
//   d = (x - D(x; sigma)) / sigma,   x' = x + (sigma_next - sigma) d,
//   d' = (x' - D(x'; sigma_next)) / sigma_next,   x_next = x + (sigma_next - sigma) (d + d') / 2,
// and a plain Euler step into sigma = 0. Evaluation e = 2 i is the predictor of step i, e = 2 i + 1
// its corrector; 2 S - 1 evaluations in all. Algorithm 2 (the same with churn noise) is
// sample::EdmHeun (edm_heun.hpp).
#include <cstdint>

#include "progdiff/sample/sigma_plan.hpp"
#include "progdiff/sample/stepper.hpp"

namespace progdiff::sample {

class Heun {
 public:
  explicit Heun(SigmaPlan plan) : plan_(std::move(plan)) {}

  std::int64_t evaluations() const { return 2 * plan_.steps() - 1; }
  // history 0: the sample at the step's start; 1: its derivative d
  int history_size() const { return 2; }
  double initial_scale() const { return plan_.initial_scale(); }
  ModelCall model_call(std::int64_t e) const {
    const std::int64_t i = (e + 1) / 2;  // the sigma the model sees: sigma_i, then sigma_{i+1}
    return {plan_.preconditioning(plan_.sigma(i), PredictionType::Epsilon).c_in, plan_.timestep(i)};
  }

  StepWeights weights(std::int64_t e, PredictionType p) const {
    constexpr int kStart = kHistoryTerm, kSlope = kHistoryTerm + 1;
    StepWeights w;
    if (e % 2 == 0) {  // predictor at sigma_i
      const std::int64_t i = e / 2;
      const double sigma = plan_.sigma(i), dt = plan_.sigma(i + 1) - sigma;
      const auto x0 = plan_.preconditioning(sigma, p).x0();
      w.x[kSampleTerm] = 1.0 + dt / sigma;
      add_prediction(w.x, -dt / sigma, x0);
      w.history[0] = keep(kSampleTerm);
      w.history[1][kSampleTerm] = 1.0 / sigma;
      add_prediction(w.history[1], -1.0 / sigma, x0);
    } else {  // corrector at sigma_{i+1}
      const std::int64_t i = e / 2;
      const double sigma = plan_.sigma(i), next = plan_.sigma(i + 1), dt = next - sigma;
      const auto x0 = plan_.preconditioning(next, p).x0();
      // x_start + dt / 2 (d + (x' - D') / next)
      w.x[kStart] = 1.0;
      w.x[kSlope] = 0.5 * dt;
      w.x[kSampleTerm] = 0.5 * dt / next;
      add_prediction(w.x, -0.5 * dt / next, x0);
    }
    return w;
  }

  template <class T = float, class B = backend::Cpu, class D>
  Tensor<T, B> sample(D& denoiser, Shape shape, std::uint64_t seed, std::uint64_t first_id = 0) const {
    return generate<T, B>(*this, denoiser, shape, seed, first_id);
  }

  const SigmaPlan& plan() const { return plan_; }

 private:
  SigmaPlan plan_;
};

}  // namespace progdiff::sample

#pragma once
// Euler's method on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (Karras et
// al. 2022, Algorithm 1 without the Heun correction; diffusers' EulerDiscreteScheduler with
// s_churn = 0):  x_next = x + (sigma_next - sigma) (x - D) / sigma.
#include <cstdint>

#include "progdiff/sample/sigma_plan.hpp"
#include "progdiff/sample/stepper.hpp"

namespace progdiff::sample {

class Euler {
 public:
  explicit Euler(SigmaPlan plan) : plan_(std::move(plan)) {}

  std::int64_t evaluations() const { return plan_.steps(); }
  int history_size() const { return 0; }
  double initial_scale() const { return plan_.initial_scale(); }
  ModelCall model_call(std::int64_t e) const {
    // c_in does not depend on the prediction type
    return {plan_.preconditioning(plan_.sigma(e), PredictionType::Epsilon).c_in, plan_.timestep(e)};
  }

  StepWeights weights(std::int64_t e, PredictionType p) const {
    const double sigma = plan_.sigma(e), dt = plan_.sigma(e + 1) - sigma;
    StepWeights w;
    // x + dt / sigma (x - D)
    w.x[kSampleTerm] = 1.0 + dt / sigma;
    add_prediction(w.x, -dt / sigma, plan_.preconditioning(sigma, p).x0());
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

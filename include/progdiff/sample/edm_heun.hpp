#pragma once
// EDM's stochastic sampler (Karras et al. 2022, Algorithm 2): Heun's second-order method on the
// probability-flow ODE with optional "churn" noise. For step i of N (sigmas t_0 > ... > t_{N-1},
// t_N = 0):
//   gamma_i = min(S_churn / N, sqrt(2) - 1) if S_tmin <= t_i <= S_tmax, else 0
//   t^_i = t_i (1 + gamma_i),   x^_i = x_i + sqrt(t^_i^2 - t_i^2) S_noise eps_i
//   d = (x^_i - D(x^_i; t^_i)) / t^_i,   x_{i+1} = x^_i + (t_{i+1} - t^_i) d
//   if t_{i+1} != 0:  d' = (x_{i+1} - D(x_{i+1}; t_{i+1})) / t_{i+1},
//                     x_{i+1} = x^_i + (t_{i+1} - t^_i) (d + d') / 2
// so the last step is Euler and a trajectory takes 2N - 1 evaluations. With S_churn = 0 this is
// Algorithm 1, what sample::Heun computes. Each step's churn noise is added by the previous step's
// corrector (the stepper adds noise in an update, not before a model call); step 0's is folded
// into x_T, whose scale sqrt(t_0^2 + (t^_0^2 - t_0^2) S_noise^2) gives x^_0 its distribution.
//
// The plan gives the sigmas, the model timesteps and the preconditioning:
// SigmaPlan::edm_preconditioned(N, grid) for a model::EdmPreconditioned (EDM's sampler for an EDM
// model), SigmaPlan::edm(N) for a raw EDM network F, SigmaPlan::karras for a VP model (no churn:
// a churned sigma has no timestep there).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/sample/sigma_plan.hpp"
#include "progdiff/sample/stepper.hpp"

namespace progdiff::sample {

/// Algorithm 2's stochasticity settings (S_churn = 0: deterministic).
struct Churn {
  double s_churn = 0.0;
  double s_tmin = 0.0;
  double s_tmax = std::numeric_limits<double>::infinity();
  double s_noise = 1.0;
};

class EdmHeun {
 public:
  explicit EdmHeun(SigmaPlan plan, Churn churn = {}) : plan_(std::move(plan)), churn_(churn) {
    require(churn.s_churn >= 0 && churn.s_noise >= 0 && churn.s_tmin <= churn.s_tmax,
            "EdmHeun: needs S_churn >= 0, S_noise >= 0 and S_tmin <= S_tmax, got S_churn = " +
                std::to_string(churn.s_churn) + ", S_noise = " + std::to_string(churn.s_noise));
    const std::int64_t n = plan_.steps();
    for (std::int64_t i = 0; i < n; ++i) {
      const double t = plan_.sigma(i);
      const double g = churn.s_churn > 0 && t >= churn.s_tmin && t <= churn.s_tmax
                           ? std::min(churn.s_churn / static_cast<double>(n), std::sqrt(2.0) - 1.0)
                           : 0.0;
      sigma_hat_.push_back(t * (1.0 + g));
      timestep_hat_.push_back(g > 0 ? plan_.timestep_at(sigma_hat_.back()) : plan_.timestep(i));
    }
  }

  std::int64_t evaluations() const { return 2 * plan_.steps() - 1; }
  // history 0: x^_i, the step's start; 1: its derivative d
  int history_size() const { return 2; }
  double initial_scale() const {
    const double t = plan_.sigma(0), h = sigma_hat_[0];
    return std::sqrt(t * t + (h * h - t * t) * churn_.s_noise * churn_.s_noise);
  }
  ModelCall model_call(std::int64_t e) const {
    const std::int64_t i = e / 2;
    if (e % 2 == 0)
      return {plan_.preconditioning(sigma_hat_[static_cast<std::size_t>(i)], PredictionType::Epsilon).c_in,
              timestep_hat_[static_cast<std::size_t>(i)]};
    return {plan_.preconditioning(plan_.sigma(i + 1), PredictionType::Epsilon).c_in, plan_.timestep(i + 1)};
  }

  StepWeights weights(std::int64_t e, PredictionType p) const {
    constexpr int kStart = kHistoryTerm, kSlope = kHistoryTerm + 1;
    if (plan_.parameterization() == Parameterization::Preconditioned)
      require(p == PredictionType::Sample, std::string("EdmHeun: an edm_preconditioned plan runs a model whose ") +
                                               "output is D (prediction type sample), got " + prediction_name(p));
    const std::int64_t i = e / 2;
    const double hat = sigma_hat_[static_cast<std::size_t>(i)], next = plan_.sigma(i + 1), dt = next - hat;
    StepWeights w;
    if (e % 2 == 0) {  // Euler predictor at t^_i (the whole step when t_{i+1} = 0)
      const auto x0 = plan_.preconditioning(hat, p).x0();
      w.x[kSampleTerm] = 1.0 + dt / hat;
      add_prediction(w.x, -dt / hat, x0);
      w.history[0] = keep(kSampleTerm);
      w.history[1][kSampleTerm] = 1.0 / hat;
      add_prediction(w.history[1], -1.0 / hat, x0);
    } else {  // trapezoidal corrector at t_{i+1}, then step i + 1's churn
      const auto x0 = plan_.preconditioning(next, p).x0();
      w.x[kStart] = 1.0;
      w.x[kSlope] = 0.5 * dt;
      w.x[kSampleTerm] = 0.5 * dt / next;
      add_prediction(w.x, -0.5 * dt / next, x0);
      const double h = sigma_hat_[static_cast<std::size_t>(i + 1)];
      if (h > next) {
        w.x[kNoiseTerm] = std::sqrt(h * h - next * next) * churn_.s_noise;
        w.noise = true;
      }
    }
    return w;
  }

  template <class T = float, class B = backend::Cpu, class D>
  Tensor<T, B> sample(D& denoiser, Shape shape, std::uint64_t seed, std::uint64_t first_id = 0) const {
    return generate<T, B>(*this, denoiser, shape, seed, first_id);
  }

  const SigmaPlan& plan() const { return plan_; }
  const Churn& churn() const { return churn_; }
  /// t^_i of each step.
  const std::vector<double>& sigma_hats() const { return sigma_hat_; }

 private:
  SigmaPlan plan_;
  Churn churn_;
  std::vector<double> sigma_hat_, timestep_hat_;
};

}  // namespace progdiff::sample

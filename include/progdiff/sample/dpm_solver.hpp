#pragma once
// DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
// Probabilistic Models"), the data-prediction solver, on discrete timesteps with a final
// step to sigma = 0. With lambda = ln(alpha_t / sigma_t), h = lambda_t - lambda_s and
// D = the x0 prediction:
//   first order (eq. 9, = DDIM):  x_t = sigma_t / sigma_s x_s - alpha_t (e^-h - 1) D_s
//   2M (Algorithm 2):            x_t = sigma_t / sigma_s x_s - alpha_t (e^-h - 1) (D_s + (D_s - D_p) / (2 r)),
//                                 r = (lambda_s - lambda_p) / h, p the previous step
// The first step and the step to sigma = 0 are first order, as in diffusers'
// DPMSolverMultistepScheduler (final_sigmas_type "zero").
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/sample/discrete_plan.hpp"
#include "progdiff/sample/prediction.hpp"
#include "progdiff/sample/stepper.hpp"

namespace progdiff::sample {

/// diffusers' default DPM-Solver timesteps ("linspace"): round(linspace(0, T - 1, S + 1)),
/// descending, without the final 0.
inline std::vector<std::int64_t> dpm_solver_timesteps(std::int64_t train_steps, std::int64_t steps) {
  require(steps >= 1 && steps < train_steps, "dpm_solver_timesteps: steps must lie in [1, " +
                                                 std::to_string(train_steps - 1) + "], got " + std::to_string(steps));
  auto t = schedule::respace(train_steps, steps + 1, schedule::TimestepSpacing::Linspace);
  t.pop_back();
  return t;
}

namespace detail {
/// alpha_t, sigma_t and lambda_t of the VP kernel at noise-to-signal ratio `sigma` (> 0).
struct VpPoint {
  double alpha, sigma, lambda;
  explicit VpPoint(double ve_sigma)
      : alpha(1.0 / std::sqrt(ve_sigma * ve_sigma + 1.0)), sigma(ve_sigma * alpha), lambda(-std::log(ve_sigma)) {}
};
}  // namespace detail

/// The DPM-Solver sigma ladder: sigma at each timestep, then 0.
class DpmPlan : public DiscretePlan {
 public:
  DpmPlan(std::vector<double> alphas_cumprod, std::vector<std::int64_t> timesteps, const char* who)
      : DiscretePlan(std::move(alphas_cumprod), std::move(timesteps), who) {}
  /// sigma = sqrt((1 - a) / a) at timestep e; 0 at e = steps().
  double sigma(std::int64_t e) const {
    if (e >= steps()) return 0.0;
    const double a = alpha_bar(timestep(e));
    return std::sqrt((1.0 - a) / a);
  }
};

class DpmSolverMultistep {
 public:
  DpmSolverMultistep(std::vector<double> alphas_cumprod, std::vector<std::int64_t> timesteps, int order = 2)
      : plan_(std::move(alphas_cumprod), std::move(timesteps), "DpmSolverMultistep"), order_(order) {
    require(order == 1 || order == 2, "DpmSolverMultistep: order must be 1 or 2, got " + std::to_string(order));
  }
  template <schedule::NoiseSchedule S>
  static DpmSolverMultistep from_schedule(const S& s, std::int64_t steps, int order = 2) {
    return DpmSolverMultistep(sample::alphas_cumprod(s), dpm_solver_timesteps(s.size(), steps), order);
  }

  std::int64_t evaluations() const { return plan_.steps(); }
  int history_size() const { return 1; }  // the previous x0 prediction
  double initial_scale() const { return 1.0; }
  ModelCall model_call(std::int64_t e) const { return {1.0, static_cast<double>(plan_.timestep(e))}; }

  StepWeights weights(std::int64_t e, PredictionType p) const {
    const auto x0 = vp_prediction(plan_.alpha_bar(plan_.timestep(e)), p).x0;
    StepWeights w;
    add_prediction(w.history[0], 1.0, x0);  // remember D_s for the next step
    const double sigma_t = plan_.sigma(e + 1);
    if (sigma_t == 0.0) {  // lambda_t = inf: the update is x0 itself
      add_prediction(w.x, 1.0, x0);
      return w;
    }
    const detail::VpPoint s(plan_.sigma(e)), t(sigma_t);
    const double h = t.lambda - s.lambda;
    const double c = -t.alpha * std::expm1(-h);
    w.x[kSampleTerm] = t.sigma / s.sigma;
    if (order_ == 1 || e == 0) {
      add_prediction(w.x, c, x0);
    } else {
      const detail::VpPoint prev(plan_.sigma(e - 1));
      const double r = (s.lambda - prev.lambda) / h;
      add_prediction(w.x, c * (1.0 + 0.5 / r), x0);
      w.x[kHistoryTerm] = -c * 0.5 / r;
    }
    return w;
  }

  template <class T = float, class B = backend::Cpu, class D>
  Tensor<T, B> sample(D& denoiser, Shape shape, std::uint64_t seed, std::uint64_t first_id = 0) const {
    return generate<T, B>(*this, denoiser, shape, seed, first_id);
  }

  const DpmPlan& plan() const { return plan_; }
  int order() const { return order_; }

 private:
  DpmPlan plan_;
  int order_;
};

}  // namespace progdiff::sample

#pragma once
// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2 with eq. 7), on a possibly respaced
// chain: from x_t with x0 predicted by the model,
//   x_s = sqrt(a_s) beta / (1 - a_t) x0 + sqrt(alpha) (1 - a_s) / (1 - a_t) x_t + std z,
// where s is the next sampling timestep, a = alpha-bar, alpha = a_t / a_s, beta = 1 - alpha, and
//   fixed_small: std^2 = (1 - a_s) / (1 - a_t) beta   (posterior variance, beta-tilde)
//   fixed_large: std^2 = beta                          (DDPM's sigma_t^2 = beta_t choice)
// Noise is added while t > 0, as in diffusers' DDPMScheduler.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "progdiff/sample/discrete_plan.hpp"
#include "progdiff/sample/prediction.hpp"
#include "progdiff/sample/stepper.hpp"

namespace progdiff::sample {

enum class DdpmVariance { FixedSmall, FixedLarge };

class Ddpm {
 public:
  Ddpm(std::vector<double> alphas_cumprod, std::vector<std::int64_t> timesteps,
       DdpmVariance variance = DdpmVariance::FixedSmall)
      : plan_(std::move(alphas_cumprod), std::move(timesteps), "Ddpm"), variance_(variance) {}
  /// All T steps of a schedule (the original chain), or `steps` of them under `spacing`.
  template <schedule::NoiseSchedule S>
  static Ddpm from_schedule(const S& s, std::int64_t steps = -1, DdpmVariance variance = DdpmVariance::FixedSmall,
                            schedule::TimestepSpacing spacing = schedule::TimestepSpacing::Leading) {
    const std::int64_t n = steps < 0 ? s.size() : steps;
    return Ddpm(sample::alphas_cumprod(s), schedule::respace(s.size(), n, spacing), variance);
  }

  std::int64_t evaluations() const { return plan_.steps(); }
  int history_size() const { return 0; }
  double initial_scale() const { return 1.0; }
  ModelCall model_call(std::int64_t e) const { return {1.0, static_cast<double>(plan_.timestep(e))}; }

  StepWeights weights(std::int64_t e, PredictionType p) const {
    const std::int64_t t = plan_.timestep(e);
    const double a_t = plan_.alpha_bar(t), a_s = plan_.alpha_bar(plan_.previous(e));
    const double alpha = a_t / a_s, beta = 1.0 - alpha;
    const double x0_coeff = std::sqrt(a_s) * beta / (1.0 - a_t);
    const double xt_coeff = std::sqrt(alpha) * (1.0 - a_s) / (1.0 - a_t);
    StepWeights w;
    add_prediction(w.x, x0_coeff, vp_prediction(a_t, p).x0);
    w.x[kSampleTerm] += xt_coeff;
    if (t > 0) {
      const double var =
          variance_ == DdpmVariance::FixedSmall ? std::max((1.0 - a_s) / (1.0 - a_t) * beta, 1e-20) : beta;
      w.x[kNoiseTerm] = std::sqrt(var);
      w.noise = true;
    }
    return w;
  }

  template <class T = float, class B = backend::Cpu, class D>
  Tensor<T, B> sample(D& denoiser, Shape shape, std::uint64_t seed, std::uint64_t first_id = 0) const {
    return generate<T, B>(*this, denoiser, shape, seed, first_id);
  }

  const DiscretePlan& plan() const { return plan_; }
  DdpmVariance variance() const { return variance_; }

 private:
  DiscretePlan plan_;
  DdpmVariance variance_;
};

}  // namespace progdiff::sample

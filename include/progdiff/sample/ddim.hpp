#pragma once
// DDIM (Song, Meng & Ermon 2021, eq. 12 with sigma of eq. 16) on respaced timesteps:
//   x_s = sqrt(a_s) x0 + sqrt(1 - a_s - std^2) eps + std z,
//   std = eta sqrt((1 - a_s) / (1 - a_t)) sqrt(1 - a_t / a_s),
// with x0 and eps from the model output; eta = 0 is the deterministic sampler, eta = 1 the
// DDPM-like one. The last step lands on alpha-bar 1 (diffusers' set_alpha_to_one).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/sample/discrete_plan.hpp"
#include "progdiff/sample/prediction.hpp"
#include "progdiff/sample/stepper.hpp"

namespace progdiff::sample {

class Ddim {
 public:
  Ddim(std::vector<double> alphas_cumprod, std::vector<std::int64_t> timesteps, double eta = 0.0)
      : plan_(std::move(alphas_cumprod), std::move(timesteps), "Ddim"), eta_(eta) {
    require(eta >= 0, "Ddim: eta must be >= 0, got " + std::to_string(eta));
  }
  /// `steps` timesteps of a schedule under `spacing` (the papers sample with 100).
  template <schedule::NoiseSchedule S>
  static Ddim from_schedule(const S& s, std::int64_t steps, double eta = 0.0,
                            schedule::TimestepSpacing spacing = schedule::TimestepSpacing::Leading,
                            std::int64_t steps_offset = 0) {
    return Ddim(sample::alphas_cumprod(s), schedule::respace(s.size(), steps, spacing, steps_offset), eta);
  }

  std::int64_t evaluations() const { return plan_.steps(); }
  int history_size() const { return 0; }
  double initial_scale() const { return 1.0; }
  ModelCall model_call(std::int64_t e) const { return {1.0, static_cast<double>(plan_.timestep(e))}; }

  StepWeights weights(std::int64_t e, PredictionType p) const {
    const double a_t = plan_.alpha_bar(plan_.timestep(e)), a_s = plan_.alpha_bar(plan_.previous(e));
    const double std_dev = eta_ * std::sqrt((1.0 - a_s) / (1.0 - a_t) * (1.0 - a_t / a_s));
    const auto pred = vp_prediction(a_t, p);
    StepWeights w;
    add_prediction(w.x, std::sqrt(a_s), pred.x0);
    add_prediction(w.x, std::sqrt(std::max(1.0 - a_s - std_dev * std_dev, 0.0)), pred.eps);
    if (eta_ > 0) {
      w.x[kNoiseTerm] = std_dev;
      w.noise = true;
    }
    return w;
  }

  template <class T = float, class B = backend::Cpu, class D>
  Tensor<T, B> sample(D& denoiser, Shape shape, std::uint64_t seed, std::uint64_t first_id = 0) const {
    return generate<T, B>(*this, denoiser, shape, seed, first_id);
  }

  const DiscretePlan& plan() const { return plan_; }
  double eta() const { return eta_; }

 private:
  DiscretePlan plan_;
  double eta_;
};

}  // namespace progdiff::sample

#include "progdiff/core/precompiled.hpp"
#if PROGDIFF_PRECOMPILED
// DDIM on the small presets' progressive models comes from the precompiled component. The
// sampling loop (sample::generate) is what is declared extern: GCC expands the inline
// Ddim::sample in the program whatever is declared (docs/build.md).
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/unet/small_presets.hpp"
namespace progdiff::model {
template <class Net>
class Progressive;  // model/progressive.hpp
}  // namespace progdiff::model
namespace progdiff::sample {
extern template Tensor<float, backend::Cpu> generate(const Ddim&, model::Progressive<unet::TinyUNet>&, Shape,
                                                     std::uint64_t, std::uint64_t);
extern template Tensor<float, backend::Cpu> generate(const Ddim&, model::Progressive<unet::SmallUNet>&, Shape,
                                                     std::uint64_t, std::uint64_t);
extern template Tensor<float, backend::Cpu> generate(const Ddim&, model::Progressive<unet::PaperUNet>&, Shape,
                                                     std::uint64_t, std::uint64_t);
}  // namespace progdiff::sample
#endif

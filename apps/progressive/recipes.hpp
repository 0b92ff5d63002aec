#pragma once
// The main job's training recipes (--objective) and U-Net blocks (--arch): what changes when a
// model is trained the way one of the papers' base models is.
//
//   simple   DDPM's L_simple (epsilon MSE) on the linear 1000-step schedule, DDIM sampling
//   hybrid   IDDPM's L_simple + 0.001 L_vlb with a learned variance (2C outputs) on the cosine
//            4000-step schedule, IDDPM's strided ancestral sampling with the learned variance
//   edm      EDM's preconditioned denoiser and loss, log-normal noise levels on a 1000-point
//            sigma grid, Algorithm 2's Heun sampler (deterministic)
//   ddpm     the DDPM U-Net blocks (convolution resampling, unit skips, PyTorch initialization)
//   ddpmpp   DDPM++'s blocks: BigGAN residual resampling, skips scaled by 1/sqrt(2), variance
//            scaling initialization with zeroed last convolutions
//
// A recipe is a type: its schedule, the net options it adds, its training objective, how it
// wraps a model (EDM's preconditioning), the view the per-group test loss reads, and its sampler.
// What a run sets at run time (EDM's sigma_data and noise label) comes in RecipeSettings.
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/tensor.hpp"
#include "progdiff/group/edm_partition.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/model/edm_preconditioning.hpp"
#include "progdiff/model/vp_view_of_edm.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/sample/edm_heun.hpp"
#include "progdiff/sample/learned_variance_ddpm.hpp"
#include "progdiff/sample/mean_only.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/schedule/edm_sigma.hpp"
#include "progdiff/train/edm_objective.hpp"
#include "progdiff/train/hybrid_objective.hpp"
#include "progdiff/train/objective.hpp"
#include "progdiff/unet/options.hpp"

namespace job {

namespace pd = progdiff;

enum class ObjectiveKind { Simple, Hybrid, Edm };
inline constexpr std::array<std::pair<ObjectiveKind, const char*>, 3> kObjectiveNames{{
    {ObjectiveKind::Simple, "simple"},
    {ObjectiveKind::Hybrid, "hybrid"},
    {ObjectiveKind::Edm, "edm"},
}};
static_assert(kObjectiveNames.size() == static_cast<std::size_t>(ObjectiveKind::Edm) + 1,
              "kObjectiveNames needs one row per ObjectiveKind value (Edm is the last)");

enum class Arch { Ddpm, Ddpmpp };
inline constexpr std::array<std::pair<Arch, const char*>, 2> kArchNames{{
    {Arch::Ddpm, "ddpm"},
    {Arch::Ddpmpp, "ddpmpp"},
}};
static_assert(kArchNames.size() == static_cast<std::size_t>(Arch::Ddpmpp) + 1,
              "kArchNames needs one row per Arch value (Ddpmpp is the last)");

/// EDM's network noise input (--edm-noise-label): the paper's ln(sigma) / 4, or the grid
/// timestep of sigma, the range progdiff's timestep embedding is built for.
inline constexpr std::array<std::pair<pd::model::EdmNoiseLabel, const char*>, 2> kEdmNoiseLabelNames{{
    {pd::model::EdmNoiseLabel::LogSigma, "log-sigma"},
    {pd::model::EdmNoiseLabel::GridTimestep, "grid-timestep"},
}};
static_assert(kEdmNoiseLabelNames.size() == static_cast<std::size_t>(pd::model::EdmNoiseLabel::GridTimestep) + 1,
              "kEdmNoiseLabelNames needs one row per EdmNoiseLabel value (GridTimestep is the last)");

/// The run-time settings of a recipe; the others ignore what EDM's alone reads.
struct RecipeSettings {
  /// EDM's sigma_data, in the preconditioning and the loss weight alike (--sigma-data).
  double sigma_data = pd::model::EdmPreconditioning{}.sigma_data;
  /// EDM's noise input to the network (--edm-noise-label).
  pd::model::EdmNoiseLabel noise_label = pd::model::EdmPreconditioning{}.noise_label;
  /// EDM's training noise levels, ln(sigma) ~ N(p_mean, p_std^2) (--edm-p-mean, --edm-p-std).
  double p_mean = pd::train::LogNormalSigmaConfig{}.p_mean;
  double p_std = pd::train::LogNormalSigmaConfig{}.p_std;
};

/// U-Net options as a list, appended to a scale's option list.
template <class... Options>
struct OptionList {};

template <Arch A>
struct ArchOptions {
  using type = OptionList<>;
};
template <>
struct ArchOptions<Arch::Ddpmpp> {
  using type = OptionList<pd::unet::ResBlockResampling, pd::unet::SkipRescale, pd::unet::VarianceScalingInit>;
};

/// What the variance-preserving recipes share: the model trains as it is (no wrapper), and each
/// model call goes to the group of its (integer) timestep.
struct UnwrappedRecipe {
  template <class M>
  using Trained = M;
  template <class M>
  static M wrap(M model, const RecipeSettings&) {
    return model;
  }
  template <class M>
  static M& inner(M& model) {
    return model;
  }
  /// The group whose net serves a model call at timestep t.
  static std::int64_t group_of(const pd::group::Partition& p, double t) { return p.group_of(std::llround(t)); }
};

/// DDPM's L_simple on the linear schedule: the job's default, unchanged.
struct SimpleRecipe : UnwrappedRecipe {
  static constexpr ObjectiveKind kind = ObjectiveKind::Simple;
  static constexpr const char* schedule_name = "DDPM linear betas, 1000 steps";
  static constexpr const char* loss_target = "the predicted noise";
  using Schedule = pd::schedule::Linear<1000>;
  using NetOptions = OptionList<>;
  using Objective = pd::train::SimpleObjective;
  static Schedule schedule() { return Schedule(); }
  static Objective objective(const RecipeSettings&) { return {}; }
  template <class M>
  static auto& loss_view(M& model) {
    return model;
  }
  static std::string sampler_name(std::int64_t steps) { return "DDIM, " + std::to_string(steps) + " steps, eta 0"; }
  /// The timesteps of the sampler's model calls, in order (one call each).
  static std::vector<double> call_timesteps(const Schedule& s, std::int64_t steps) {
    std::vector<double> t;
    const auto ddim = pd::sample::Ddim::from_schedule(s, steps);
    for (std::int64_t v : ddim.plan().timesteps()) t.push_back(double(v));
    return t;
  }
  template <class T, class B, class M>
  static pd::Tensor<T, B> sample(M& model, const Schedule& s, std::int64_t steps, pd::Shape shape, std::uint64_t seed,
                                 std::uint64_t first) {
    return pd::sample::Ddim::from_schedule(s, steps).sample<T, B>(model, shape, seed, first);
  }
};

/// IDDPM: the hybrid objective with a learned variance on the cosine schedule of 4000 steps,
/// sampled by strided ancestral steps with that variance (IDDPM sec. 4).
struct HybridRecipe : UnwrappedRecipe {
  static constexpr ObjectiveKind kind = ObjectiveKind::Hybrid;
  static constexpr const char* schedule_name = "IDDPM cosine, 4000 steps";
  static constexpr const char* loss_target = "the predicted noise (the mean head; L_simple)";
  using Schedule = pd::schedule::Cosine<4000>;
  using NetOptions = OptionList<pd::unet::LearnedVariance>;
  using Objective = pd::train::HybridObjective;
  static Schedule schedule() { return Schedule(); }
  static Objective objective(const RecipeSettings&) { return {}; }
  /// The epsilon head alone, so that the loss is the L_simple part, as for the simple recipe.
  template <class M>
  static pd::sample::MeanOnly<M> loss_view(M& model) {
    return pd::sample::MeanOnly<M>{model};
  }
  static std::string sampler_name(std::int64_t steps) {
    return "DDPM with the learned variance, " + std::to_string(steps) + " strided steps, x0 clipped";
  }
  static std::vector<double> call_timesteps(const Schedule& s, std::int64_t steps) {
    std::vector<double> t;
    const auto sampler = pd::sample::LearnedVarianceDdpm::from_schedule(s, steps);
    for (std::int64_t e = 0; e < sampler.evaluations(); ++e) t.push_back(double(sampler.plan().timestep(e)));
    return t;
  }
  template <class T, class B, class M>
  static pd::Tensor<T, B> sample(M& model, const Schedule& s, std::int64_t steps, pd::Shape shape, std::uint64_t seed,
                                 std::uint64_t first) {
    return pd::sample::LearnedVarianceDdpm::from_schedule(s, steps).sample<T, B>(model, shape, seed, first);
  }
};

/// EDM (Karras et al. 2022): the preconditioned denoiser, its loss and log-normal noise levels
/// on a 1000-point sigma grid (sigma 0.002 .. 80, rho 7), sampled by Algorithm 2 without churn.
struct EdmRecipe {
  static constexpr ObjectiveKind kind = ObjectiveKind::Edm;
  static constexpr const char* schedule_name = "EDM sigmas 0.002 .. 80, rho 7, a 1000-point grid";
  static constexpr const char* loss_target = "the denoised image D (x0; inputs noised as on the grid's VP schedule)";
  using Schedule = pd::schedule::EDM;
  using NetOptions = OptionList<>;
  using Objective = pd::train::EdmObjective;
  static pd::schedule::EdmSigma grid() { return pd::schedule::EdmSigma(1000); }
  static Schedule schedule() { return grid().schedule(); }
  static Objective objective(const RecipeSettings& s) {
    Objective o;
    o.sigma_data = s.sigma_data;
    o.sigmas.p_mean = s.p_mean;
    o.sigmas.p_std = s.p_std;
    return o;
  }
  template <class M>
  using Trained = pd::model::EdmPreconditioned<M>;
  template <class M>
  static Trained<M> wrap(M model, const RecipeSettings& s) {
    pd::model::EdmPreconditioning preconditioning;
    preconditioning.sigma_data = s.sigma_data;
    preconditioning.noise_label = s.noise_label;
    return Trained<M>(std::move(model), grid(), preconditioning);
  }
  template <class M>
  static M& inner(Trained<M>& model) {
    return model.inner();
  }
  template <class M>
  static pd::model::VpViewOfEdm<M> loss_view(M& model) {
    return pd::model::VpViewOfEdm<M>{model};
  }
  /// By sigma, as EdmPreconditioned routes (group/edm_partition.hpp).
  static std::int64_t group_of(const pd::group::Partition& p, double t) {
    const auto g = grid();
    return pd::group::group_of_sigma(g, p, g.sigma_at(t));
  }
  static std::string sampler_name(std::int64_t steps) {
    return "EDM Heun (Algorithm 2, no churn), " + std::to_string(steps) + " steps, " + std::to_string(2 * steps - 1) +
           " model calls";
  }
  static pd::sample::EdmHeun sampler(std::int64_t steps) {
    return pd::sample::EdmHeun(pd::sample::SigmaPlan::edm_preconditioned(steps, grid()));
  }
  /// Heun calls the model at each step's sigma and, but for the last step, at the next one.
  static std::vector<double> call_timesteps(const Schedule&, std::int64_t steps) {
    const auto heun = sampler(steps);
    std::vector<double> t;
    for (std::int64_t i = 0; i < steps; ++i) {
      t.push_back(heun.plan().timestep(i));
      if (i + 1 < steps) t.push_back(heun.plan().timestep(i + 1));
    }
    return t;
  }
  template <class T, class B, class M>
  static pd::Tensor<T, B> sample(M& model, const Schedule&, std::int64_t steps, pd::Shape shape, std::uint64_t seed,
                                 std::uint64_t first) {
    return sampler(steps).sample<T, B>(model, shape, seed, first);
  }
};

}  // namespace job

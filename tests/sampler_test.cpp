#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/sample/samplers.hpp"
#include "progdiff/schedule/schedule.hpp"

namespace progdiff_tests_sampler {

namespace smp = progdiff::sample;
namespace sch = progdiff::schedule;
using nlohmann::json;
using progdiff::Shape;
using progdiff::Tensor;
using smp::PredictionType;

namespace {

template <class T>
using CpuTensor = Tensor<T, progdiff::backend::Cpu>;

const json& fixture() {
  static const json j = [] {
    std::ifstream in(std::string(PROGDIFF_FIXTURES_DIR) + "/sampler/diffusers_samplers.json");
    REQUIRE_MESSAGE(in.good(), "missing fixture (run tools/fixtures/make_sampler_fixtures.py)");
    json doc = json::parse(in);
    REQUIRE(doc["format_version"].get<int>() == 1);
    return doc;
  }();
  return j;
}

PredictionType parse_prediction(const std::string& s) {
  if (s == "epsilon") return PredictionType::Epsilon;
  if (s == "sample") return PredictionType::Sample;
  REQUIRE(s == "v_prediction");
  return PredictionType::VPrediction;
}

// The stand-in model of the fixture generator: 0.9 x_in + 0.01 t / 1000, element-wise.
struct AffineModel {
  PredictionType prediction;
  template <class Ts>
  CpuTensor<double> apply(const CpuTensor<double>& x, Ts timesteps) const {
    auto h = x.to_host();
    const std::size_t d = h.size() / static_cast<std::size_t>(x.dim(0));
    for (std::size_t i = 0; i < h.size(); ++i)
      h[i] = 0.9 * h[i] + 0.01 * static_cast<double>(timesteps[i / d]) / 1000.0;
    return CpuTensor<double>::from_host(x.shape(), h);
  }
  CpuTensor<double> predict(const CpuTensor<double>& x, std::span<const std::int64_t> t) { return apply(x, t); }
  CpuTensor<double> predict(const CpuTensor<double>& x, std::span<const double> t) { return apply(x, t); }
  PredictionType prediction_type() const { return prediction; }
};
static_assert(smp::ContinuousDenoiser<AffineModel, double, progdiff::backend::Cpu>);
static_assert(!smp::Denoiser<int, float, progdiff::backend::Cpu>);

std::vector<double> numbers(const json& j) { return j.get<std::vector<double>>(); }

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

/// Runs the fixture's trajectory (or its independent steps) and returns the largest deviation.
template <class S>
double replay(const S& sampler, const json& c) {
  const Shape shape{2, 4};
  AffineModel model{parse_prediction(c["prediction_type"])};
  double worst = 0;
  if (c.contains("states")) {
    const auto& states = c["states"];
    REQUIRE(static_cast<std::int64_t>(states.size()) == sampler.evaluations() + 1);
    auto st = smp::resume(sampler, CpuTensor<double>::from_host(shape, numbers(states[0])), {0, 0}, {0, 1}, 0);
    for (std::int64_t e = 0; e < sampler.evaluations(); ++e) {
      const auto out = smp::evaluate(sampler, model, st);
      std::optional<CpuTensor<double>> noise;
      if (c.contains("noises") && !c["noises"][e].is_null())
        noise = CpuTensor<double>::from_host(shape, numbers(c["noises"][e]));
      smp::step(sampler, st, out, model.prediction, noise ? &*noise : nullptr);
      worst = std::max(worst, max_abs_diff(st.x.to_host(), numbers(states[e + 1])));
    }
  } else {
    for (const auto& r : c["records"]) {
      const std::int64_t e = r["evaluation"];
      auto st = smp::resume(sampler, CpuTensor<double>::from_host(shape, numbers(r["x"])), {e, e}, {0, 1}, 0);
      const auto out = smp::evaluate(sampler, model, st);
      std::optional<CpuTensor<double>> noise;
      if (!r["noise"].is_null()) noise = CpuTensor<double>::from_host(shape, numbers(r["noise"]));
      smp::step(sampler, st, out, model.prediction, noise ? &*noise : nullptr);
      worst = std::max(worst, max_abs_diff(st.x.to_host(), numbers(r["next"])));
    }
  }
  return worst;
}

std::vector<std::int64_t> integers(const json& j) { return j.get<std::vector<std::int64_t>>(); }

// Every case is computed in float64 by the generator, so agreement is far inside the 1e-5 bound.
constexpr double kStepTolerance = 1e-9;

}  // namespace

TEST_CASE("the fixture's alpha-bar table is the Linear<1000> schedule") {
  const auto a = numbers(fixture()["alphas_cumprod"]);
  CHECK(max_abs_diff(a, smp::alphas_cumprod(sch::Linear<1000>{})) < 1e-12);
}

TEST_CASE("DDPM steps match diffusers' DDPMScheduler (fixed_small, fixed_large; three prediction types)") {
  const auto a = numbers(fixture()["alphas_cumprod"]);
  int checked = 0;
  double worst = 0;
  for (const auto& c : fixture()["cases"]) {
    if (c["scheduler"] != "ddpm") continue;
    CAPTURE(c["name"].get<std::string>());
    const auto variance =
        c["variance"] == "fixed_small" ? smp::DdpmVariance::FixedSmall : smp::DdpmVariance::FixedLarge;
    const smp::Ddpm sampler(a, integers(c["timesteps"]), variance);
    if (c.contains("states")) {
      const auto typed = smp::Ddpm::from_schedule(sch::Linear<1000>{}, 10, variance);
      CHECK(typed.plan().timesteps() == integers(c["timesteps"]));
    }
    const double err = replay(sampler, c);
    CHECK(err < kStepTolerance);
    worst = std::max(worst, err);
    ++checked;
  }
  MESSAGE("DDPM: largest deviation from diffusers " << worst);
  CHECK(checked == 12);
}

TEST_CASE("DDIM steps match diffusers' DDIMScheduler (eta 0 and 1, 1000 -> 50 leading)") {
  const auto a = numbers(fixture()["alphas_cumprod"]);
  int checked = 0;
  double worst = 0;
  for (const auto& c : fixture()["cases"]) {
    if (c["scheduler"] != "ddim") continue;
    CAPTURE(c["name"].get<std::string>());
    const smp::Ddim sampler(a, integers(c["timesteps"]), c["eta"].get<double>());
    CHECK(smp::Ddim::from_schedule(sch::Linear<1000>{}, 50).plan().timesteps() == integers(c["timesteps"]));
    const double err = replay(sampler, c);
    CHECK(err < kStepTolerance);
    worst = std::max(worst, err);
    ++checked;
  }
  MESSAGE("DDIM: largest deviation from diffusers " << worst);
  CHECK(checked == 6);
}

TEST_CASE("DPM-Solver++ 2M and single-step orders 1-3 match diffusers' trajectories") {
  const auto a = numbers(fixture()["alphas_cumprod"]);
  int checked = 0;
  double worst = 0;
  for (const auto& c : fixture()["cases"]) {
    const std::string kind = c["scheduler"];
    if (kind != "dpm_multistep" && kind != "dpm_singlestep") continue;
    CAPTURE(c["name"].get<std::string>());
    const auto ts = integers(c["timesteps"]);
    CHECK(smp::dpm_solver_timesteps(1000, static_cast<std::int64_t>(ts.size())) == ts);
    const int order = c["order"];
    double err = 0;
    if (kind == "dpm_multistep") {
      err = replay(smp::DpmSolverMultistep(a, ts, order), c);
    } else {
      const smp::DpmSolverSinglestep sampler(a, ts, order);
      const auto orders = c["orders"].get<std::vector<int>>();
      for (std::size_t e = 0; e < orders.size(); ++e)
        CHECK(sampler.order_at(static_cast<std::int64_t>(e)) == orders[e]);
      err = replay(sampler, c);
    }
    CHECK(err < kStepTolerance);
    worst = std::max(worst, err);
    ++checked;
  }
  MESSAGE("DPM-Solver++: largest deviation from diffusers " << worst);
  CHECK(checked == 15);
}

TEST_CASE("Euler and Heun on linspace, Karras and EDM ladders match diffusers' trajectories") {
  const auto a = numbers(fixture()["alphas_cumprod"]);
  int checked = 0;
  double worst = 0;
  for (const auto& c : fixture()["cases"]) {
    const std::string kind = c["scheduler"];
    if (kind != "euler" && kind != "heun" && kind != "edm_euler") continue;
    CAPTURE(c["name"].get<std::string>());
    const std::int64_t steps = c["steps"];
    const std::string ladder = c["ladder"];
    const auto plan = ladder == "edm"      ? smp::SigmaPlan::edm(steps)
                      : ladder == "karras" ? smp::SigmaPlan::karras(a, steps)
                                           : smp::SigmaPlan::linspace(a, steps);
    auto sigmas = plan.sigmas();
    sigmas.pop_back();
    CHECK(max_abs_diff(sigmas, numbers(c["sigmas"])) < 1e-9);
    CHECK(max_abs_diff(plan.timesteps(), numbers(c["model_timesteps"])) < 1e-9);
    const double err = kind == "heun" ? replay(smp::Heun(plan), c) : replay(smp::Euler(plan), c);
    // the states reach |x| ~ 300 (sigma_max = 157 or 80): a relative 1e-11
    CHECK(err < 1e-8);
    worst = std::max(worst, err);
    ++checked;
  }
  MESSAGE("Euler / Heun: largest deviation from diffusers " << worst);
  CHECK(checked == 14);
}

namespace {

// A 1-D Gaussian mixture and its exact denoiser: with x = x0 + sigma eps (VE form), the
// posterior mean is sum_k r_k(x) (mu_k + s_k^2 / (s_k^2 + sigma^2) (x - mu_k)), r_k the
// responsibilities under N(mu_k, s_k^2 + sigma^2).
struct Mixture {
  std::vector<double> weight{0.3, 0.7}, mean{-1.5, 1.0}, sd{0.3, 0.5};

  double posterior_mean(double x, double sigma) const {
    double lw[2], top = -1e300;
    for (int k = 0; k < 2; ++k) {
      const double v = sd[k] * sd[k] + sigma * sigma;
      lw[k] = std::log(weight[k]) - 0.5 * std::log(v) - 0.5 * (x - mean[k]) * (x - mean[k]) / v;
      top = std::max(top, lw[k]);
    }
    double z = 0, m = 0;
    for (int k = 0; k < 2; ++k) {
      const double r = std::exp(lw[k] - top), v = sd[k] * sd[k];
      z += r;
      m += r * (mean[k] + v / (v + sigma * sigma) * (x - mean[k]));
    }
    return m / z;
  }
  double cdf(double x) const {
    double f = 0;
    for (int k = 0; k < 2; ++k) f += weight[k] * 0.5 * std::erfc(-(x - mean[k]) / (sd[k] * std::numbers::sqrt2));
    return f;
  }
  double mean_value() const { return weight[0] * mean[0] + weight[1] * mean[1]; }
  double variance() const {
    double m2 = 0;
    for (int k = 0; k < 2; ++k) m2 += weight[k] * (sd[k] * sd[k] + mean[k] * mean[k]);
    return m2 - mean_value() * mean_value();
  }
  /// 1-D Wasserstein-1 distance of samples to the mixture: integral of |F_n - F|.
  double wasserstein1(std::vector<float> xs) const {
    std::sort(xs.begin(), xs.end());
    const double lo = std::min(-6.0, static_cast<double>(xs.front())),
                 hi = std::max(6.0, static_cast<double>(xs.back()));
    const int grid = 24000;
    const double dx = (hi - lo) / grid;
    double w = 0;
    std::size_t below = 0;
    for (int i = 0; i < grid; ++i) {
      const double x = lo + (i + 0.5) * dx;
      while (below < xs.size() && xs[below] <= x) ++below;
      w += std::abs(static_cast<double>(below) / static_cast<double>(xs.size()) - cdf(x)) * dx;
    }
    return w;
  }
};

// The exact model of the mixture under a schedule, in the parameterization a sampler uses:
// VP (input sqrt(a) x0 + sqrt(1 - a) eps, sigma interpolated linearly in the timestep as
// diffusers does) or EDM (input c_in (x0 + sigma eps), sigma = exp(4 t)).
struct MixtureModel {
  Mixture mix;
  std::vector<double> train_sigma;  // VP
  bool edm = false;
  double sigma_data = 0.5;
  PredictionType prediction = PredictionType::Epsilon;

  double sigma_of(double t) const {
    if (edm) return std::exp(4.0 * t);
    const auto i = std::clamp(static_cast<std::size_t>(std::floor(t)), std::size_t{0}, train_sigma.size() - 2);
    return train_sigma[i] + (t - static_cast<double>(i)) * (train_sigma[i + 1] - train_sigma[i]);
  }
  double output(double input, double sigma) const {
    if (edm) {  // Karras et al. Table 1: D = c_skip x + c_out F
      const double s2 = sigma * sigma + sigma_data * sigma_data, x = input * std::sqrt(s2);
      const double x0 = mix.posterior_mean(x, sigma);
      if (prediction == PredictionType::Sample) return x0;
      const double c_skip = sigma_data * sigma_data / s2, c_out = sigma * sigma_data / std::sqrt(s2);
      return (prediction == PredictionType::Epsilon ? 1.0 : -1.0) * (x0 - c_skip * x) / c_out;
    }
    const double a = 1.0 / (1.0 + sigma * sigma), sa = std::sqrt(a), sb = std::sqrt(1.0 - a);
    const double x0 = mix.posterior_mean(input / sa, sigma), eps = (input - sa * x0) / sb;
    if (prediction == PredictionType::Epsilon) return eps;
    if (prediction == PredictionType::Sample) return x0;
    return sa * eps - sb * x0;  // v, Salimans & Ho 2022
  }
  template <class Ts>
  CpuTensor<float> apply(const CpuTensor<float>& x, Ts t) const {
    auto h = x.to_host();
    const std::size_t d = h.size() / static_cast<std::size_t>(x.dim(0));
    for (std::size_t i = 0; i < h.size(); ++i)
      h[i] = static_cast<float>(output(h[i], sigma_of(static_cast<double>(t[i / d]))));
    return CpuTensor<float>::from_host(x.shape(), h);
  }
  CpuTensor<float> predict(const CpuTensor<float>& x, std::span<const std::int64_t> t) { return apply(x, t); }
  CpuTensor<float> predict(const CpuTensor<float>& x, std::span<const double> t) { return apply(x, t); }
  PredictionType prediction_type() const { return prediction; }
};

std::vector<double> train_sigmas() {
  std::vector<double> s;
  for (double a : smp::alphas_cumprod(sch::Linear<1000>{})) s.push_back(std::sqrt((1 - a) / a));
  return s;
}

struct Moments {
  double mean, variance;
};
Moments moments(const std::vector<float>& xs) {
  double m = 0, v = 0;
  for (float x : xs) m += x;
  m /= static_cast<double>(xs.size());
  for (float x : xs) v += (x - m) * (x - m);
  return {m, v / static_cast<double>(xs.size() - 1)};
}

// 4000 draws: the sampling error alone is about 0.015 in W1, 0.02 in the mean and 0.05 in the
// variance (DDPM's 1000-step chain lands at W1 = 0.018); the step counts below
// keep each sampler's discretization error under about as much again (measured: W1 falls to
// 0.013-0.016 for every sampler as its steps grow to 200).
constexpr double kW1Bound = 0.035, kMeanBound = 0.05, kVarianceBound = 0.1;

template <class S>
void check_distribution(const S& sampler, bool edm, const char* what) {
  for (auto p : {PredictionType::Epsilon, PredictionType::Sample, PredictionType::VPrediction}) {
    MixtureModel model{Mixture{}, train_sigmas(), edm, 0.5, p};
    const auto xs = sampler.sample(model, Shape{1000, 4}, /*seed=*/7).to_host();
    const auto mo = moments(xs);
    const double w1 = model.mix.wasserstein1(xs);
    CAPTURE(what);
    CAPTURE(smp::prediction_name(p));
    const std::string summary = std::string(what) + " " + smp::prediction_name(p) + ": W1 = " + std::to_string(w1) +
                                ", mean = " + std::to_string(mo.mean) + ", variance = " + std::to_string(mo.variance);
    MESSAGE(summary);
    CHECK(w1 < kW1Bound);
    CHECK(std::abs(mo.mean - model.mix.mean_value()) < kMeanBound);
    CHECK(std::abs(mo.variance - model.mix.variance()) < kVarianceBound);
  }
}

}  // namespace

TEST_CASE("samples of a Gaussian mixture under its exact denoiser follow the mixture") {
  const sch::Linear<1000> schedule;
  // a moment-matched Gaussian is far from the bimodal mixture, so the W1 bound has teeth
  {
    Mixture m;
    std::vector<float> gauss;
    progdiff::Generator g(1);
    for (int i = 0; i < 4000; ++i)
      gauss.push_back(static_cast<float>(m.mean_value() + std::sqrt(m.variance()) * g.normal<double>()));
    CHECK(m.wasserstein1(gauss) > 2 * kW1Bound);
  }
  // the full 1000-step chain is checked against diffusers above; 250 respaced steps keep this fast
  SUBCASE("DDPM fixed_small, 250 steps") {
    check_distribution(smp::Ddpm::from_schedule(schedule, 250), false, "ddpm fixed_small");
  }
  SUBCASE("DDPM fixed_large, 250 steps") {
    check_distribution(smp::Ddpm::from_schedule(schedule, 250, smp::DdpmVariance::FixedLarge), false,
                       "ddpm fixed_large");
  }
  SUBCASE("DDIM eta 0, 100 steps") { check_distribution(smp::Ddim::from_schedule(schedule, 100), false, "ddim eta 0"); }
  SUBCASE("DDIM eta 1, 200 steps") {
    check_distribution(smp::Ddim::from_schedule(schedule, 200, 1.0), false, "ddim eta 1");
  }
  SUBCASE("DPM-Solver++ 2M, 30 steps") {
    check_distribution(smp::DpmSolverMultistep::from_schedule(schedule, 30), false, "dpm++ 2m");
  }
  SUBCASE("DPM-Solver++ single-step, orders 1-3, 60 / 30 / 30 steps") {
    for (int order = 1; order <= 3; ++order)
      check_distribution(smp::DpmSolverSinglestep::from_schedule(schedule, order == 1 ? 60 : 30, order), false,
                         "dpm++ singlestep");
  }
  const auto a = smp::alphas_cumprod(schedule);
  SUBCASE("Euler, VP linspace ladder, 50 steps") {
    check_distribution(smp::Euler(smp::SigmaPlan::linspace(a, 50)), false, "euler linspace");
  }
  SUBCASE("Heun, VP linspace ladder, 20 steps") {
    check_distribution(smp::Heun(smp::SigmaPlan::linspace(a, 20)), false, "heun linspace");
  }
  SUBCASE("Euler, EDM ladder, 100 steps") {
    check_distribution(smp::Euler(smp::SigmaPlan::edm(100)), true, "euler edm");
  }
  SUBCASE("Heun, EDM ladder, 40 steps (79 evaluations)") {
    check_distribution(smp::Heun(smp::SigmaPlan::edm(40)), true, "heun edm");
  }
}

namespace {

// A batch whose samples sit at different evaluations must give each sample exactly what it
// gets alone: the weights, the noise and the model are all per sample.
template <class S>
void check_mixed_batch(const S& sampler, const char* what) {
  CAPTURE(what);
  const auto a = smp::alphas_cumprod(sch::Linear<1000>{});
  // the last sample finishes after two of the four evaluations and must then keep its value
  std::vector<std::int64_t> at{0, sampler.evaluations() / 3, sampler.evaluations() / 2, 1, sampler.evaluations() - 2};
  std::vector<std::uint64_t> ids{40, 41, 42, 43, 44};
  std::vector<double> x0(5 * 6);
  progdiff::Generator g(3);
  for (auto& v : x0) v = g.normal<double>();
  for (auto p : {PredictionType::Epsilon, PredictionType::VPrediction}) {
    MixtureModel model{Mixture{}, train_sigmas(), false, 0.5, p};
    auto run_batch = [&](std::vector<std::int64_t> e, std::vector<std::uint64_t> id, std::vector<float> x) {
      const auto n = static_cast<std::int64_t>(e.size());
      auto st = smp::resume(sampler, CpuTensor<float>::from_host(Shape{n, 2, 3}, x), e, id, 99);
      for (int k = 0; k < 4; ++k) smp::advance(sampler, model, st);
      return st.x.to_host();
    };
    const std::vector<float> xf(x0.begin(), x0.end());
    const auto together = run_batch(at, ids, xf);
    for (std::size_t i = 0; i < 5; ++i) {
      const auto alone = run_batch({at[i]}, {ids[i]}, std::vector<float>(xf.begin() + 6 * i, xf.begin() + 6 * (i + 1)));
      for (std::size_t j = 0; j < 6; ++j) CHECK(together[6 * i + j] == alone[j]);
    }
  }
}

}  // namespace

TEST_CASE("a batch with mixed timesteps gives each sample what it gets alone") {
  const sch::Linear<1000> schedule;
  const auto a = smp::alphas_cumprod(schedule);
  check_mixed_batch(smp::Ddpm::from_schedule(schedule, 50), "ddpm");
  check_mixed_batch(smp::Ddim::from_schedule(schedule, 50, 1.0), "ddim eta 1");
  check_mixed_batch(smp::DpmSolverMultistep::from_schedule(schedule, 20), "dpm++ 2m");
  check_mixed_batch(smp::DpmSolverSinglestep::from_schedule(schedule, 21, 3), "dpm++ singlestep 3");
  check_mixed_batch(smp::Euler(smp::SigmaPlan::karras(a, 20)), "euler");
  check_mixed_batch(smp::Heun(smp::SigmaPlan::linspace(a, 12)), "heun");
}

TEST_CASE("sampling is deterministic per seed and per sample, whatever the batch") {
  const sch::Linear<1000> schedule;
  const auto sampler = smp::Ddim::from_schedule(schedule, 20, 0.5);
  MixtureModel model{Mixture{}, train_sigmas(), false, 0.5, PredictionType::Epsilon};
  const auto first = sampler.sample(model, Shape{4, 3}, 11).to_host();
  CHECK(sampler.sample(model, Shape{4, 3}, 11).to_host() == first);
  CHECK(sampler.sample(model, Shape{4, 3}, 12).to_host() != first);
  // sample 2 of the seed, generated alone
  const auto alone = sampler.sample(model, Shape{1, 3}, 11, /*first_id=*/2).to_host();
  for (std::size_t j = 0; j < 3; ++j) CHECK(alone[j] == first[6 + j]);
  // the initial noise is the Philox stream of each sample: element j of sample n is
  // philox_normal(seed, kSamplingStream + n, j)
  auto st = smp::start<smp::Ddim, double>(sampler, Shape{2, 3}, 11, 5);
  const auto x = st.x.to_host();
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t j = 0; j < 3; ++j)
      CHECK(x[3 * n + j] == progdiff::math::philox_normal<double>(11, smp::kSamplingStream + 5 + n, j));
}

TEST_CASE("samplers reject bad plans and bad batches with messages that name them") {
  const auto a = smp::alphas_cumprod(sch::Linear<1000>{});
  CHECK_THROWS_WITH_AS(smp::Ddim(a, {10, 20}), doctest::Contains("strictly descending"), progdiff::ConfigError);
  CHECK_THROWS_WITH_AS(smp::Ddpm(a, {1000}), doctest::Contains("outside [0, 1000)"), progdiff::ConfigError);
  CHECK_THROWS_WITH_AS(smp::Ddim(a, {5}, -1.0), doctest::Contains("eta"), progdiff::ConfigError);
  CHECK_THROWS_AS(smp::Ddim({0.5, 1.5}, {1}), progdiff::ConfigError);
  CHECK_THROWS_WITH_AS(smp::DpmSolverSinglestep(a, {9, 5}, 4), doctest::Contains("order"), progdiff::ConfigError);
  CHECK_THROWS_AS(smp::SigmaPlan::karras(a, 1), progdiff::ConfigError);
  const smp::Ddim ddim(a, {500, 0});
  AffineModel model{PredictionType::Epsilon};
  auto st = smp::resume(ddim, CpuTensor<double>::zeros(Shape{2, 3}), {0, 0}, {0, 1}, 0);
  CHECK_THROWS_AS(smp::step(ddim, st, CpuTensor<double>::zeros(Shape{2, 4}), PredictionType::Epsilon),
                  progdiff::ShapeError);
  CHECK_THROWS_WITH_AS(smp::resume(ddim, CpuTensor<double>::zeros(Shape{2, 3}), {0}, {0, 1}, 0),
                       doctest::Contains("evaluation indices"), progdiff::ShapeError);
  CHECK_THROWS_AS(smp::resume(ddim, CpuTensor<double>::zeros(Shape{1, 3}), {3}, {0}, 0), progdiff::ConfigError);
  smp::run(ddim, model, st);
  CHECK(smp::finished(st.evaluation, ddim.evaluations()));
}

TEST_CASE("the CPU weighted_sum kernel: per-sample weights, skipped null terms, aliased output") {
  using Cpu = progdiff::backend::Cpu;
  // two samples of three values; terms 0 and 3 present, the others null with NaN weights
  std::vector<float> a{1, 2, 3, 4, 5, 6}, b{10, 20, 30, 40, 50, 60};
  const double nan = std::nan("");
  std::vector<double> w{0.5,  nan, nan, 2.0,  nan, nan,  // sample 0
                        -1.0, nan, nan, 0.25, nan, nan};
  std::array<const float*, Cpu::sampler_terms> terms{a.data(), nullptr, nullptr, b.data(), nullptr, nullptr};
  Cpu::weighted_sum<float>(2, 3, w.data(), terms, a.data());  // writes over term 0
  const std::vector<float> expected{20.5f, 41.0f, 61.5f, 6.0f, 7.5f, 9.0f};
  CHECK(a == expected);
}

}  // namespace progdiff_tests_sampler

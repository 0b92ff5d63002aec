// Training machinery: the diffusion loss against PyTorch, weightings against their closed forms,
// AdamW and gradient clipping against torch.optim.AdamW + clip_grad_norm_, the learning-rate
// schedule and EMA against closed forms, timestep samplers, and the finite guard.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <numbers>
#include <string>
#include <vector>

#include "fixture_support.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/train.hpp"
#include "train_support.hpp"

namespace progdiff_tests_train {

using namespace progdiff;
using train_test::Cpu;
using train_test::TinyMlp;

namespace {

using fixture_test::fixture_tensor;
using fixture_test::kPredictions;
using fixture_test::scaled_error;

}  // namespace

TEST_CASE_TEMPLATE("diffusion loss matches PyTorch for every prediction type and weighting", T, float, double) {
  const auto f = train_test::read_train_fixture("diffusion_loss");
  const double tol = sizeof(T) == 8 ? 1e-12 : 2e-6;
  const auto x0 = fixture_tensor<T>(f, "x0"), noise = fixture_tensor<T>(f, "noise"),
             output = fixture_tensor<T>(f, "output");
  const auto timesteps = f.values<std::int64_t>("timesteps");
  const auto fixture_ab = f.values<double>("alpha_bar");
  // The library's DDPM linear schedule gives the same alpha-bars as the reference's float64 cumprod.
  const schedule::Linear<1000> sched;
  const std::vector<double> ab = loss::alpha_bars_at(sched, timesteps);
  for (std::size_t i = 0; i < ab.size(); ++i) CHECK(ab[i] == doctest::Approx(fixture_ab[i]).epsilon(1e-12));

  const std::map<std::string, loss::WeightingConfig> weightings = {{"none", {loss::LossWeighting::None}},
                                                                   {"min_snr", {loss::LossWeighting::MinSnr, 5.0}},
                                                                   {"edm", {loss::LossWeighting::Edm, 5.0, 0.5}}};
  for (const auto& [pname, prediction] : kPredictions)
    for (const auto& [wname, weighting] : weightings) {
      const std::string key = pname + "." + wname;
      INFO(key);
      const auto pair = loss::make_training_pair(x0, noise, std::span<const double>(fixture_ab), prediction, weighting);
      CHECK(scaled_error(pair.x_t.to_host(), f.values<double>(key + ".x_t")) < tol);
      CHECK(scaled_error(pair.target.to_host(), f.values<double>(key + ".target")) < tol);
      CHECK(scaled_error(pair.weights, f.values<double>(key + ".weights")) < 1e-9);
      const auto r = loss::weighted_mse(output, pair.target, std::span<const double>(pair.weights));
      const double want = f.values<double>(key + ".loss")[0];
      CHECK(r.loss == doctest::Approx(want).epsilon(sizeof(T) == 8 ? 1e-10 : 1e-5));
      CHECK(scaled_error(r.grad.to_host(), f.values<double>(key + ".grad")) < tol);
    }
}

TEST_CASE("loss weightings follow their closed forms") {
  using loss::LossWeighting;
  using schedule::PredictionType;
  const loss::WeightingConfig min_snr{LossWeighting::MinSnr, 5.0}, edm{LossWeighting::Edm, 5.0, 0.5};
  // alpha-bar 0.95: SNR 19 > gamma; alpha-bar 0.5: SNR 1 < gamma.
  const double hi = 0.95, snr_hi = 19.0;
  CHECK(loss::loss_weight(hi, PredictionType::Epsilon, min_snr) == doctest::Approx(5.0 / snr_hi));
  CHECK(loss::loss_weight(hi, PredictionType::Sample, min_snr) == doctest::Approx(5.0));
  CHECK(loss::loss_weight(hi, PredictionType::VPrediction, min_snr) == doctest::Approx(5.0 / 20.0));
  CHECK(loss::loss_weight(0.5, PredictionType::Epsilon, min_snr) == doctest::Approx(1.0));
  CHECK(loss::loss_weight(0.5, PredictionType::VPrediction, min_snr) == doctest::Approx(0.5));
  // EDM: lambda(sigma) = (sigma^2 + 0.25) / (0.25 sigma^2) on x0; sigma^2 = 1 / SNR.
  for (double a : {0.01, 0.5, 0.95}) {
    const double s2 = (1 - a) / a, lambda = (s2 + 0.25) / (0.25 * s2);
    CHECK(loss::loss_weight(a, PredictionType::Sample, edm) == doctest::Approx(lambda));
    CHECK(loss::loss_weight(a, PredictionType::Epsilon, edm) == doctest::Approx(lambda * s2));
    CHECK(loss::loss_weight(a, PredictionType::VPrediction, edm) == doctest::Approx(lambda * (1 - a)));
  }
  CHECK(loss::loss_weight(0.3, PredictionType::Sample, {}) == 1.0);
  CHECK_THROWS_AS(loss::loss_weight(1.0, PredictionType::Epsilon, min_snr), ConfigError);
  CHECK_THROWS_AS(loss::loss_weight(0.5, PredictionType::Epsilon, {LossWeighting::MinSnr, 0.0}), ConfigError);
}

TEST_CASE("diffusion loss rejects mismatched batches") {
  const auto x = Tensor<float, Cpu>::zeros(Shape{2, 3}), y = Tensor<float, Cpu>::zeros(Shape{3, 3});
  const std::vector<double> ab{0.5, 0.5};
  CHECK_THROWS_AS(loss::make_training_pair(x, y, std::span<const double>(ab), schedule::PredictionType::Epsilon),
                  ShapeError);
  const std::vector<double> three{0.5, 0.5, 0.5};
  CHECK_THROWS_AS(loss::make_training_pair(x, x, std::span<const double>(three), schedule::PredictionType::Epsilon),
                  ShapeError);
  CHECK_THROWS_AS(loss::weighted_mse(x, y, std::span<const double>(ab)), ShapeError);
  const schedule::Linear<10> s;
  const std::vector<std::int64_t> bad{10};
  CHECK_THROWS_AS(loss::alpha_bars_at(s, bad), ConfigError);
}

TEST_CASE("AdamW with gradient clipping and a warm-up cosine schedule matches PyTorch over six steps") {
  const auto f = train_test::read_train_fixture("adamw_clip");
  TinyMlp<float> model(3, 4, 2);
  std::vector<std::string> names;
  model.visit_parameters(
      [&](const std::string& name, nn::Parameter<float, Cpu>& p) {
        names.push_back(name);
        p.value.copy_from(fixture_tensor<float>(f, "init." + name));
      },
      std::string());
  REQUIRE(names == std::vector<std::string>{"l1.weight", "l1.bias", "l2.weight", "l2.bias"});
  optim::AdamW<float, Cpu> opt({0.9, 0.99, 1e-8, 0.05});
  const optim::LrSchedule lr{0.01, 2, optim::LrDecay::Cosine, 6};
  const int steps = std::stoi(f.metadata.at("steps"));
  int clipped = 0;
  for (int k = 0; k < steps; ++k) {
    INFO("step " << k);
    const std::string s = "step" + std::to_string(k);
    model.visit_parameters(
        [&](const std::string& name, nn::Parameter<float, Cpu>& p) {
          p.grad.copy_from(fixture_tensor<float>(f, s + ".grad." + name));
        },
        std::string());
    CHECK(lr.at(k) == doctest::Approx(f.values<double>(s + ".lr")[0]).epsilon(1e-12));
    const double norm = optim::clip_grad_norm(model, 1.0);
    CHECK(norm == doctest::Approx(f.values<double>(s + ".norm")[0]).epsilon(1e-6));
    clipped += norm > 1.0;
    CHECK(optim::gradient_norm(model) <= 1.0 + 1e-6);
    opt.step(model, lr.at(k));
    model.visit_parameters(
        [&](const std::string& name, nn::Parameter<float, Cpu>& p) {
          INFO(name);
          CHECK(scaled_error(p.value.to_host(), f.values<double>(s + ".param." + name)) < 1e-6);
        },
        std::string());
  }
  CHECK(clipped >= 2);  // the fixture exercises both branches
  CHECK(clipped < steps);
  CHECK(opt.step_count() == steps);
  for (const auto& name : names) {
    INFO(name);
    CHECK(scaled_error(opt.moments().at(name).m.to_host(), f.values<double>("exp_avg." + name)) < 1e-6);
    CHECK(scaled_error(opt.moments().at(name).v.to_host(), f.values<double>("exp_avg_sq." + name)) < 1e-6);
  }
}

TEST_CASE("learning-rate schedule: warm-up, constant and cosine closed forms") {
  const optim::LrSchedule constant{2e-4, 10};
  CHECK(constant.at(0) == 0.0);
  CHECK(constant.at(5) == doctest::Approx(1e-4));
  CHECK(constant.at(10) == doctest::Approx(2e-4));
  CHECK(constant.at(100000) == doctest::Approx(2e-4));
  const optim::LrSchedule cosine{1.0, 10, optim::LrDecay::Cosine, 110, 0.1};
  CHECK(cosine.at(10) == doctest::Approx(1.0));
  CHECK(cosine.at(60) == doctest::Approx(0.55));  // half way: lr_min + (lr - lr_min) / 2
  CHECK(cosine.at(35) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi / 4))));
  CHECK(cosine.at(110) == doctest::Approx(0.1));
  CHECK(cosine.at(500) == doctest::Approx(0.1));
  CHECK_THROWS_AS((optim::LrSchedule{1.0, 10, optim::LrDecay::Cosine, 5}.at(20)), ConfigError);
}

TEST_CASE("EMA of weights follows the closed form, with and without decay warm-up") {
  TinyMlp<double> model(2, 3);
  Generator gen(3);
  model.initialize(gen);
  std::map<std::string, std::vector<double>> start, target;
  model.visit_parameters([&](const std::string& n, nn::Parameter<double, Cpu>& p) { start[n] = p.value.to_host(); },
                         std::string());
  auto set_weights_to_target = [&] {
    model.visit_parameters(
        [&](const std::string& n, nn::Parameter<double, Cpu>& p) {
          auto v = start[n];
          for (auto& x : v) x = 2.0 * x + 1.0;
          target[n] = v;
          p.value = Tensor<double, Cpu>::from_host(p.value.shape(), v);
        },
        std::string());
  };
  // With the weights held at p after initialization at e0: e_n = p + (e0 - p) prod_k d_k.
  auto check = [&](const optim::Ema<double, Cpu>& ema, double product) {
    for (const auto& [n, e] : ema.shadow()) {
      const auto got = e.to_host();
      for (std::size_t i = 0; i < got.size(); ++i)
        CHECK(got[i] == doctest::Approx(target[n][i] + (start[n][i] - target[n][i]) * product).epsilon(1e-12));
    }
  };
  {
    optim::Ema<double, Cpu> ema({0.9});
    model.visit_parameters(
        [&](const std::string& n, nn::Parameter<double, Cpu>& p) {
          p.value = Tensor<double, Cpu>::from_host(p.value.shape(), start[n]);
        },
        std::string());
    ema.initialize(model);
    set_weights_to_target();
    for (int k = 0; k < 7; ++k) ema.update(model);
    check(ema, std::pow(0.9, 7));
  }
  {
    // Simple warm-up: prod_{k<n} (1 + k) / (10 + k) = n! 9! / (n + 9)!
    optim::Ema<double, Cpu> ema({0.9999, optim::EmaWarmup::Simple});
    model.visit_parameters(
        [&](const std::string& n, nn::Parameter<double, Cpu>& p) {
          p.value = Tensor<double, Cpu>::from_host(p.value.shape(), start[n]);
        },
        std::string());
    ema.initialize(model);
    set_weights_to_target();
    for (int k = 0; k < 5; ++k) ema.update(model);
    check(ema, std::tgamma(6.0) * std::tgamma(10.0) / std::tgamma(15.0));
    CHECK(ema.update_count() == 5);
    ema.copy_to(model);
    model.visit_parameters(
        [&](const std::string& n, nn::Parameter<double, Cpu>& p) {
          CHECK(p.value.to_host() == ema.shadow().at(n).to_host());
        },
        std::string());
  }
  const optim::Ema<double, Cpu> power({0.999, optim::EmaWarmup::Power, 1.0, 0.75});
  CHECK(power.decay_at(0) == 0.0);
  CHECK(power.decay_at(15) == doctest::Approx(1.0 - std::pow(16.0, -0.75)));
  CHECK(power.decay_at(1000000) == doctest::Approx(0.999));
  optim::Ema<double, Cpu> fresh;
  CHECK_THROWS_AS(fresh.update(model), ConfigError);
}

TEST_CASE("uniform timestep sampler covers its group's range evenly and deterministically") {
  train::UniformTimesteps sampler(100, 110);
  Generator gen(11, 2);
  const auto d = sampler.draw(gen, 20000);
  std::vector<int> counts(10);
  for (auto t : d.timesteps) {
    REQUIRE(t >= 100);
    REQUIRE(t < 110);
    ++counts[static_cast<std::size_t>(t - 100)];
  }
  // Each count is Binomial(20000, 0.1): sd 42; 5 sd bounds.
  for (int c : counts) CHECK(std::abs(c - 2000) < 212);
  for (double w : d.weights) CHECK(w == 1.0);
  Generator again(11, 2);
  CHECK(sampler.draw(again, 20000).timesteps == d.timesteps);
  CHECK_THROWS_AS(train::UniformTimesteps(5, 5), ConfigError);
}

TEST_CASE("importance timestep sampler: frequencies follow the probabilities and weights are unbiased") {
  const std::vector<double> p{1, 2, 3, 4};  // normalised to 0.1 .. 0.4
  train::ImportanceTimesteps sampler(20, 24, p);
  Generator gen(5);
  const int n = 40000;
  const auto d = sampler.draw(gen, n);
  std::vector<int> counts(4);
  double weighted = 0.0;
  for (std::size_t i = 0; i < d.timesteps.size(); ++i) {
    const auto t = d.timesteps[i] - 20;
    ++counts[static_cast<std::size_t>(t)];
    CHECK(d.weights[i] == doctest::Approx(1.0 / (4 * p[static_cast<std::size_t>(t)] / 10.0)));
    weighted += d.weights[i] * static_cast<double>(t * t);  // f(t) = t^2, uniform mean 3.5
  }
  for (int k = 0; k < 4; ++k) {
    const double expected = n * p[static_cast<std::size_t>(k)] / 10.0;
    CHECK(std::abs(counts[static_cast<std::size_t>(k)] - expected) < 5 * std::sqrt(expected));
  }
  CHECK(weighted / n == doctest::Approx(3.5).epsilon(0.03));

  // Loss history: uniform until every timestep has `history` losses, then sqrt(E[L^2]) mixed.
  train::ImportanceTimesteps learned(0, 3, 2, 0.1);
  const std::vector<std::int64_t> ts{0, 1, 2, 0, 1};
  const std::vector<double> ls{1, 2, 4, 1, 2};
  learned.record(ts, ls);
  for (double q : learned.probabilities()) CHECK(q == doctest::Approx(1.0 / 3));
  const std::vector<std::int64_t> t2{2};
  const std::vector<double> l2{4};
  learned.record(t2, l2);
  const auto q = learned.probabilities();
  // sqrt second moments 1, 2, 4 -> 1/7, 2/7, 4/7, then 0.9 q + 0.1 / 3
  CHECK(q[0] == doctest::Approx(0.9 / 7 + 0.1 / 3));
  CHECK(q[1] == doctest::Approx(1.8 / 7 + 0.1 / 3));
  CHECK(q[2] == doctest::Approx(3.6 / 7 + 0.1 / 3));
  const std::vector<std::int64_t> outside{3};
  CHECK_THROWS_AS(learned.record(outside, l2), ConfigError);
}

TEST_CASE("finite guard names the step, the group and the parameter") {
  TinyMlp<float> model(2, 3);
  nn::zero_grad(model);
  CHECK_NOTHROW(train::check_finite(0.5, model, 7, "group 1"));
  CHECK_THROWS_WITH_AS(train::check_finite(NAN, model, 7, "group 1"),
                       doctest::Contains("training step 7 of group 'group 1': loss is"), train::NonFiniteError);
  model.visit_parameters(
      [](const std::string& name, nn::Parameter<float, Cpu>& p) {
        if (name == "l2.weight") p.grad.fill(INFINITY);
      },
      std::string());
  CHECK_THROWS_WITH_AS(train::check_finite(0.5, model, 12, "high-noise"),
                       doctest::Contains("step 12 of group 'high-noise': gradient of parameter 'l2.weight'"),
                       train::NonFiniteError);
}

}  // namespace progdiff_tests_train

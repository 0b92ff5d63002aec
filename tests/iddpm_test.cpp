// IDDPM's learned variance: the hybrid objective, the L_vlb terms, learned-range sampling and the
// bits/dim evaluation, against tests/fixtures/iddpm/ (tools/fixtures/make_iddpm_fixtures.py:
// the paper's formulas in PyTorch float64 with autograd, and diffusers' DDPMScheduler with
// variance_type="learned_range" for the trajectories), and central differences.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "fixture_support.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/metrics/nll.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/sample/fixed_small_variance.hpp"
#include "progdiff/sample/learned_variance_ddpm.hpp"
#include "progdiff/sample/mean_only.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/schedule/gaussian_posterior.hpp"
#include "progdiff/train/hybrid_objective.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/unet/output_channels.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_iddpm {

using namespace progdiff;
using Cpu = backend::Cpu;

namespace {

io::SafetensorsFile fixture(const std::string& name) {
  return io::read_safetensors(std::string(PROGDIFF_FIXTURES_DIR) + "/iddpm/" + name + ".safetensors");
}

using fixture_test::fixture_tensor;
using fixture_test::kPredictions;
using fixture_test::scaled_error;

// The fixtures' stand-in model: [0.9 x + 0.01 t / T, tanh(0.5 x - 0.3 + t / T)].
struct StandIn {
  double train_steps;
  template <class T, class B>
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const std::int64_t> t) const {
    const auto v = x.to_host();
    const std::size_t n = static_cast<std::size_t>(x.dim(0)), d = v.size() / n;
    std::vector<T> out(2 * v.size());
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < d; ++j) {
        const double xv = static_cast<double>(v[i * d + j]), tt = static_cast<double>(t[i]) / train_steps;
        out[2 * d * i + j] = static_cast<T>(0.9 * xv + 0.01 * tt);
        out[2 * d * i + d + j] = static_cast<T>(std::tanh(0.5 * xv - 0.3 + tt));
      }
    Shape s = x.shape();
    s[1] *= 2;
    return Tensor<T, B>::from_host(s, out);
  }
  schedule::PredictionType prediction_type() const { return schedule::PredictionType::Epsilon; }
};

using SmallNet = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                            unet::ImageChannels<1>, unet::BaseChannels<8>, unet::GroupNormGroups<4>>;
using LearnedNet =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::LearnedVariance>;

static_assert(!unet::learns_variance_v<SmallNet> && unet::learns_variance_v<LearnedNet>);
static_assert(unet::learns_variance_v<model::Progressive<LearnedNet>>);
static_assert(!unet::learns_variance_v<model::Progressive<SmallNet>>);
static_assert(SmallNet::spec::output_channels == 1 && LearnedNet::spec::output_channels == 2);

// A C-output epsilon model known in closed form: eps_hat = 0.9 x + 0.01 t / T (StandIn's mean);
// FixedSmallVariance gives it the variance head.
struct EpsilonOnly {
  template <class T, class B>
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const std::int64_t> t) const {
    auto v = x.to_host();
    const std::size_t n = static_cast<std::size_t>(x.dim(0)), d = v.size() / n;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < d; ++j)
        v[i * d + j] = static_cast<T>(0.9 * static_cast<double>(v[i * d + j]) + 0.01 * double(t[i]) / 1000.0);
    return Tensor<T, B>::from_host(x.shape(), v);
  }
  schedule::PredictionType prediction_type() const { return schedule::PredictionType::Epsilon; }
};

}  // namespace

TEST_CASE("the cosine chain's posterior matches IDDPM's quantities") {
  const auto f = fixture("losses");
  const schedule::Cosine<4000> cosine;
  const auto want = f.values<double>("alpha_bars");
  std::vector<double> got;
  for (std::int64_t i = 0; i < cosine.size(); ++i) got.push_back(cosine.alpha_bar(i));
  CHECK(scaled_error(got, want) < 1e-12);
  const schedule::GaussianPosterior chain(want);
  std::vector<double> beta, var, logvar;
  for (std::int64_t k = 0; k < chain.size(); ++k) {
    beta.push_back(chain.beta(k));
    var.push_back(chain.variance(k));
    logvar.push_back(chain.log_variance_clipped(k));
  }
  CHECK(scaled_error(beta, f.values<double>("betas")) < 1e-12);
  CHECK(scaled_error(var, f.values<double>("posterior_variance")) < 1e-12);
  CHECK(scaled_error(logvar, f.values<double>("posterior_log_variance_clipped")) < 1e-10);
  CHECK_THROWS_AS(schedule::GaussianPosterior({0.9}), ConfigError);
  CHECK_THROWS_AS(schedule::GaussianPosterior({0.9, 0.95}), ConfigError);
}

TEST_CASE("KL, normal CDF and discretized decoder likelihood match the reference") {
  const auto f = fixture("losses");
  const auto x = f.values<double>("dll.x"), m = f.values<double>("dll.mean"), s = f.values<double>("dll.log_scale");
  std::vector<double> ll, kl, cdf;
  for (std::size_t i = 0; i < x.size(); ++i)
    ll.push_back(loss::discretized_gaussian_log_likelihood(x[i], m[i], s[i]).value);
  CHECK(scaled_error(ll, f.values<double>("dll.value")) < 1e-12);
  const auto m1 = f.values<double>("kl.m1"), l1 = f.values<double>("kl.lv1"), m2 = f.values<double>("kl.m2"),
             l2 = f.values<double>("kl.lv2");
  for (std::size_t i = 0; i < m1.size(); ++i) kl.push_back(loss::normal_kl(m1[i], l1[i], m2[i], l2[i]).value);
  CHECK(scaled_error(kl, f.values<double>("kl.value")) < 1e-12);
  for (double v : f.values<double>("cdf.x")) cdf.push_back(loss::approx_standard_normal_cdf(v));
  CHECK(scaled_error(cdf, f.values<double>("cdf.value")) < 1e-14);
  // the analytic derivatives against central differences, in every branch of the decoder
  const double h = 1e-6;
  for (std::size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i);
    const auto g = loss::discretized_gaussian_log_likelihood(x[i], m[i], s[i]);
    const auto at = [&](double dm, double ds) {
      return loss::discretized_gaussian_log_likelihood(x[i], m[i] + dm, s[i] + ds).value;
    };
    CHECK(g.d_mean == doctest::Approx((at(h, 0) - at(-h, 0)) / (2 * h)).epsilon(1e-5).scale(1.0));
    CHECK(g.d_log == doctest::Approx((at(0, h) - at(0, -h)) / (2 * h)).epsilon(1e-5).scale(1.0));
    const auto k = loss::normal_kl(m1[i], l1[i], m2[i], l2[i]);
    const auto kat = [&](double dm, double dl) { return loss::normal_kl(m1[i], l1[i], m2[i] + dm, l2[i] + dl).value; };
    CHECK(k.d_mean == doctest::Approx((kat(h, 0) - kat(-h, 0)) / (2 * h)).epsilon(1e-5).scale(1.0));
    CHECK(k.d_log == doctest::Approx((kat(0, h) - kat(0, -h)) / (2 * h)).epsilon(1e-5).scale(1.0));
  }
}

TEST_CASE_TEMPLATE("the hybrid and L_vlb losses and their gradients match autograd", T, double, float) {
  const auto f = fixture("losses");
  const bool dbl = sizeof(T) == 8;
  const double tol = dbl ? 1e-6 : 2e-4;
  const schedule::GaussianPosterior chain(f.values<double>("alpha_bars"));
  const auto x0 = fixture_tensor<T>(f, "x0"), noise = fixture_tensor<T>(f, "noise"),
             out = fixture_tensor<T>(f, "output");
  const auto steps = f.values<std::int64_t>("timesteps");
  const auto sw = f.values<double>("simple_weights"), iw = f.values<double>("importance_weights");
  for (const auto& [name, p] : kPredictions) {
    INFO(name);
    const auto r = loss::hybrid_loss(out, x0, noise, std::span<const std::int64_t>(steps), chain, p,
                                     std::span<const double>(sw), std::span<const double>(iw));
    CHECK(scaled_error(r.mse, f.values<double>(name + ".mse")) < tol);
    CHECK(scaled_error(r.vlb, f.values<double>(name + ".vb")) < tol);
    CHECK(scaled_error(r.per_sample, f.values<double>(name + ".hybrid.per_sample")) < tol);
    CHECK(r.loss == doctest::Approx(f.values<double>(name + ".hybrid.loss")[0]).epsilon(tol));
    CHECK(scaled_error(r.grad.to_host(), f.values<double>(name + ".hybrid.grad")) < tol);
    const auto v = loss::hybrid_loss(out, x0, noise, std::span<const std::int64_t>(steps), chain, p,
                                     std::span<const double>(sw), std::span<const double>(iw), {.vlb_only = true});
    CHECK(v.loss == doctest::Approx(f.values<double>(name + ".vlb.loss")[0]).epsilon(tol));
    CHECK(scaled_error(v.grad.to_host(), f.values<double>(name + ".vlb.grad")) < tol);
  }
}

TEST_CASE("the L_vlb terms with clipped x0 and the prior term match the reference") {
  const auto f = fixture("losses");
  const schedule::GaussianPosterior chain(f.values<double>("alpha_bars"));
  const auto x0 = f.values<double>("x0"), xt = f.values<double>("x_t"), out = f.values<double>("output");
  const auto steps = f.values<std::int64_t>("timesteps");
  const std::size_t n = steps.size(), d = x0.size() / n;
  for (const auto& [name, p] : kPredictions) {
    INFO(name);
    std::vector<double> terms, prior;
    for (std::size_t i = 0; i < n; ++i) {
      const std::span<const double> xs(x0.data() + i * d, d), xts(xt.data() + i * d, d),
          pred(out.data() + 2 * d * i, d), v(out.data() + 2 * d * i + d, d);
      const auto map = loss::x0_map(chain.alpha_bar(steps[i]), p);
      terms.push_back(loss::vlb_term(chain, {xs, xts, pred, v, steps[i], map.sample, map.output, true}));
      prior.push_back(loss::prior_term(xs, chain.alpha_bar(chain.size() - 1)));
    }
    CHECK(scaled_error(terms, f.values<double>(name + ".vb_clipped")) < 1e-10);
    CHECK(scaled_error(prior, f.values<double>("prior_bpd")) < 1e-12);
  }
}

TEST_CASE("the hybrid gradient equals central differences, the mean held fixed inside L_vlb") {
  const auto f = fixture("losses");
  const schedule::GaussianPosterior chain(f.values<double>("alpha_bars"));
  const auto x0 = fixture_tensor<double>(f, "x0"), noise = fixture_tensor<double>(f, "noise");
  const auto out_values = f.values<double>("output");
  const auto steps = f.values<std::int64_t>("timesteps");
  const auto sw = f.values<double>("simple_weights"), iw = f.values<double>("importance_weights");
  const loss::HybridConfig hybrid{}, vlb{.vlb_only = true};
  const auto loss = [&](const std::vector<double>& o, const loss::HybridConfig& c) {
    return loss::hybrid_loss(Tensor<double, Cpu>::from_host(fixture_tensor<double>(f, "output").shape(), o), x0, noise,
                             std::span<const std::int64_t>(steps), chain, schedule::PredictionType::Epsilon,
                             std::span<const double>(sw), std::span<const double>(iw), c)
        .loss;
  };
  const auto out = fixture_tensor<double>(f, "output");
  const auto g_h =
      loss::hybrid_loss(out, x0, noise, std::span<const std::int64_t>(steps), chain, schedule::PredictionType::Epsilon,
                        std::span<const double>(sw), std::span<const double>(iw), hybrid)
          .grad.to_host();
  const auto g_v =
      loss::hybrid_loss(out, x0, noise, std::span<const std::int64_t>(steps), chain, schedule::PredictionType::Epsilon,
                        std::span<const double>(sw), std::span<const double>(iw), vlb)
          .grad.to_host();
  const std::size_t n = steps.size(), d = out_values.size() / (2 * n);
  const double h = 1e-6;
  double worst_v = 0, worst_mean = 0, worst_vlb = 0, scale = 0;
  for (std::size_t idx = 0; idx < out_values.size(); ++idx) {
    auto plus = out_values, minus = out_values;
    plus[idx] += h;
    minus[idx] -= h;
    const double fd_h = (loss(plus, hybrid) - loss(minus, hybrid)) / (2 * h);
    const double fd_v = (loss(plus, vlb) - loss(minus, vlb)) / (2 * h);
    scale = std::max({scale, std::abs(fd_h), std::abs(fd_v)});
    worst_vlb = std::max(worst_vlb, std::abs(g_v[idx] - fd_v));
    if ((idx / d) % 2 == 1) {  // a variance channel: the whole hybrid loss reaches it
      worst_v = std::max(worst_v, std::abs(g_h[idx] - fd_h));
    } else {  // a mean channel: L_simple's gradient only, so FD(hybrid) - lambda FD(L_vlb)
      worst_mean = std::max(worst_mean, std::abs(g_h[idx] - (fd_h - hybrid.lambda * fd_v)));
    }
  }
  MESSAGE("central differences: variance " << worst_v << ", mean " << worst_mean << ", L_vlb " << worst_vlb
                                           << " (scale " << scale << ")");
  CHECK(worst_v < 1e-6 * std::max(1.0, scale));
  CHECK(worst_mean < 1e-6 * std::max(1.0, scale));
  CHECK(worst_vlb < 1e-6 * std::max(1.0, scale));
  // the stop-gradient matters: the L_vlb gradient on the mean is not negligible here
  double mean_vlb = 0;
  for (std::size_t idx = 0; idx < g_v.size(); ++idx)
    if ((idx / d) % 2 == 0) mean_vlb = std::max(mean_vlb, std::abs(hybrid.lambda * g_v[idx]));
  CHECK(mean_vlb > 1e-4);
}

TEST_CASE("the hybrid loss refuses a C-channel output") {
  const schedule::GaussianPosterior chain = schedule::GaussianPosterior::of(schedule::Cosine<10>());
  const auto x0 = Tensor<double, Cpu>::zeros({2, 1, 2, 2});
  const std::vector<std::int64_t> steps{1, 2};
  const std::vector<double> w{1, 1};
  CHECK_THROWS_AS(
      loss::hybrid_loss(x0, x0, x0, std::span<const std::int64_t>(steps), chain, schedule::PredictionType::Epsilon,
                        std::span<const double>(w), std::span<const double>(w)),
      ShapeError);
}

TEST_CASE("learned-range DDPM steps match diffusers' DDPMScheduler, full and respaced") {
  const auto f = fixture("sampling");
  MESSAGE("trajectories from " << f.metadata.at("trajectory_source"));
  const auto ab = f.values<double>("alpha_bars");
  const schedule::Cosine<100> cosine;
  for (std::int64_t i = 0; i < cosine.size(); ++i)
    CHECK(cosine.alpha_bar(i) == doctest::Approx(ab[static_cast<std::size_t>(i)]).epsilon(1e-12));
  const StandIn model{100.0};
  for (const auto& [name, steps, clip] : {std::tuple{"full", 100, false}, std::tuple{"respaced", 10, true}}) {
    INFO(std::string(name));
    const auto sampler = sample::LearnedVarianceDdpm::from_schedule(cosine, steps, clip);
    const auto want_t = f.values<std::int64_t>(std::string(name) + ".timesteps");
    REQUIRE(sampler.plan().timesteps() == want_t);
    const auto states = fixture_tensor<double>(f, std::string(name) + ".states").to_host();
    const auto noises = fixture_tensor<double>(f, std::string(name) + ".noise").to_host();
    const Shape shape{2, 2, 2, 2};
    const std::size_t d = static_cast<std::size_t>(shape.numel());
    double worst = 0, scale = 0;
    for (std::int64_t e = 0; e < sampler.evaluations(); ++e) {
      const std::vector<double> x(states.begin() + e * d, states.begin() + (e + 1) * d);
      const std::vector<double> z(noises.begin() + e * d, noises.begin() + (e + 1) * d);
      const auto xt = Tensor<double, Cpu>::from_host(shape, x);
      const std::vector<std::int64_t> t(2, want_t[static_cast<std::size_t>(e)]);
      const auto out = model.predict(xt, std::span<const std::int64_t>(t));
      const auto next =
          sampler.step(xt, out, e, schedule::PredictionType::Epsilon, Tensor<double, Cpu>::from_host(shape, z))
              .to_host();
      for (std::size_t j = 0; j < d; ++j) {
        worst = std::max(worst, std::abs(next[j] - states[(e + 1) * d + j]));
        scale = std::max(scale, std::abs(states[(e + 1) * d + j]));
      }
    }
    MESSAGE(std::string(name) << ": largest step error " << worst << " (states up to " << scale << ")");
    CHECK(worst < 1e-9 * std::max(1.0, scale));
  }
}

TEST_CASE("learned-variance sampling: per-sample noise streams and a C-channel view for other samplers") {
  const schedule::Cosine<50> cosine;
  const StandIn model{50.0};
  const auto sampler = sample::LearnedVarianceDdpm::from_schedule(cosine, 10);
  const auto batch = sampler.sample<double>(model, Shape{3, 1, 2, 2}, 7).to_host();
  const auto alone = sampler.sample<double>(model, Shape{1, 1, 2, 2}, 7, 2).to_host();
  for (std::size_t j = 0; j < 4; ++j) CHECK(batch[8 + j] == alone[j]);
  for (double v : batch) CHECK(std::isfinite(v));
  // the respaced chain really differs from the full one
  const auto full =
      sample::LearnedVarianceDdpm::from_schedule(cosine).sample<double>(model, Shape{3, 1, 2, 2}, 7).to_host();
  CHECK(full != batch);
  // any sampler runs a learned-variance model on its mean head
  StandIn inner{50.0};
  sample::MeanOnly mean{inner};
  const auto ddim = sample::Ddim::from_schedule(cosine, 10, 1.0);
  const auto x = ddim.sample<double>(mean, Shape{2, 1, 2, 2}, 3);
  CHECK(x.shape() == Shape{2, 1, 2, 2});
  const auto out = inner.predict(Tensor<double, Cpu>::full({1, 1, 1, 2}, 0.5), std::vector<std::int64_t>{25});
  const auto head = sample::mean_channels(out).to_host(), var = sample::variance_channels(out).to_host();
  CHECK(head[0] == doctest::Approx(0.9 * 0.5 + 0.01 * 0.5));
  CHECK(var[1] == doctest::Approx(std::tanh(0.25 - 0.3 + 0.5)));
}

TEST_CASE("the L_vlb terms of every step and the prior match the reference bound") {
  const auto f = fixture("nll");
  const schedule::GaussianPosterior chain(f.values<double>("alpha_bars"));
  const auto x0 = fixture_tensor<double>(f, "x0");
  const auto noise = f.values<double>("noise");
  const auto want = f.values<double>("terms");
  StandIn model{20.0};
  const std::size_t n = 2, d = static_cast<std::size_t>(x0.numel()) / n;
  std::vector<double> total(n, 0.0), got;
  for (std::int64_t k = 0; k < chain.size(); ++k) {
    const std::vector<double> z(noise.begin() + k * n * d, noise.begin() + (k + 1) * n * d);
    const std::vector<std::int64_t> steps(n, k);
    const auto terms = metrics::vlb_terms_at(model, chain, x0, std::span<const std::int64_t>(steps),
                                             Tensor<double, Cpu>::from_host(x0.shape(), z));
    for (std::size_t i = 0; i < n; ++i) {
      got.push_back(terms[i]);
      total[i] += terms[i];
    }
  }
  CHECK(scaled_error(got, want) < 1e-10);
  const auto x = x0.to_host();
  for (std::size_t i = 0; i < n; ++i)
    total[i] += loss::prior_term(std::span<const double>(x.data() + i * d, d), chain.alpha_bar(chain.size() - 1));
  CHECK(scaled_error(total, f.values<double>("total")) < 1e-10);
}

TEST_CASE("bits/dim: the sampled-step estimate agrees with the full bound within its standard error") {
  const schedule::GaussianPosterior chain = schedule::GaussianPosterior::of(schedule::Cosine<40>());
  data::ImageDataset images;
  images.count = 48;
  images.channels = 1;
  images.height = images.width = 4;
  Generator g(5);
  for (std::int64_t i = 0; i < images.count * 16; ++i)
    images.pixels.push_back(data::byte_to_unit_range(static_cast<std::uint8_t>(g.below(256))));
  images.labels.assign(static_cast<std::size_t>(images.count), 0);
  StandIn model{40.0};
  const auto full = metrics::nll_bits_per_dim<double>(model, chain, images, {.batch_size = 16});
  const auto sampled = metrics::nll_bits_per_dim<double>(model, chain, images, {.batch_size = 16, .steps = 4});
  MESSAGE("full " << full.bits_per_dim << " +- " << full.standard_error << ", 4 sampled steps " << sampled.bits_per_dim
                  << " +- " << sampled.standard_error);
  CHECK(std::isfinite(full.bits_per_dim));
  CHECK(full.decoder == doctest::Approx(sampled.decoder).epsilon(1e-12));  // L_0 and L_K are exact in both
  CHECK(full.prior == doctest::Approx(sampled.prior).epsilon(1e-12));
  CHECK(sampled.standard_error > full.standard_error);
  const double sigma =
      std::sqrt(full.standard_error * full.standard_error + sampled.standard_error * sampled.standard_error);
  CHECK(std::abs(full.bits_per_dim - sampled.bits_per_dim) < 4 * sigma);
  // the batch size does not change the result
  const auto other = metrics::nll_bits_per_dim<double>(model, chain, images, {.batch_size = 5, .steps = 4});
  CHECK(other.bits_per_dim == doctest::Approx(sampled.bits_per_dim).epsilon(1e-12));
}

TEST_CASE("a LearnedVariance U-Net trains with the hybrid objective and keeps C outputs by default") {
  Generator init(1);
  SmallNet plain;
  plain.initialize(init);
  LearnedNet learned;
  learned.initialize(init);
  const auto x = Tensor<float, Cpu>::zeros({2, 1, 8, 8});
  const auto t = Tensor<float, Cpu>::full({2}, 3.0f);
  CHECK(plain.forward(x, t).shape() == Shape{2, 1, 8, 8});
  CHECK(learned.forward(x, t).shape() == Shape{2, 2, 8, 8});

  data::ImageDataset images;
  images.count = 16;
  images.channels = 1;
  images.height = images.width = 8;
  Generator g(3);
  for (std::int64_t i = 0; i < images.count * 64; ++i)
    images.pixels.push_back(data::byte_to_unit_range(static_cast<std::uint8_t>(g.below(256))));
  images.labels.assign(16, 0);
  const schedule::Cosine<100> cosine;
  model::Progressive<LearnedNet> base(std::move(learned), cosine.size());
  train::TrainOptions o;
  o.steps = 3;
  o.batch_size = 4;
  o.use_ema = false;
  o.progress.mode = train::ProgressOptions::Mode::Off;
  o.make_sampler = [](std::int64_t, std::int64_t b, std::int64_t e) {
    return train::AnyTimestepSampler(train::ImportanceTimesteps(b, e));
  };
  const auto report = train::train_stage1(base, cosine, images, o, train::HybridObjective{});
  REQUIRE(report.steps.size() == 3);
  for (const auto& s : report.steps) CHECK((std::isfinite(s.loss) && s.loss > 0));
}

TEST_CASE("a learned-variance checkpoint and a fixed-variance model are told apart by their descriptions") {
  // The structure string names the variance head, so loading one kind into the other is refused
  // by the description, naming the key, before any tensor shape is compared.
  CHECK(model::unet_structure<LearnedNet::spec>().find("variance=learned") != std::string::npos);
  CHECK(model::unet_structure<SmallNet::spec>().find("variance") == std::string::npos);
  Generator gen(1);
  LearnedNet learned;
  learned.initialize(gen);
  model::Progressive<LearnedNet> saved(std::move(learned), 20);
  const auto path = std::filesystem::temp_directory_path() / "progdiff_iddpm_test_structure.safetensors";
  io::save_checkpoint(path, saved, saved.describe(), io::TrainingState{});
  SmallNet fixed;
  model::Progressive<SmallNet> target(std::move(fixed), 20);
  CHECK_THROWS_WITH_AS(io::load_checkpoint(path, target, target.describe()), doctest::Contains("model.structure"),
                       ConfigError);
  std::filesystem::remove(path);
}

TEST_CASE("grouped learned-variance models route a batch that mixes groups: 2C outputs, C input gradients") {
  // Each sample's 2C output is that of its own group's network alone; dx has the input's C channels.
  Generator gen(11);
  LearnedNet a, b;
  a.initialize(gen);
  b.initialize(gen);
  a.set_training(false);  // no dropout: the same input gives the same output
  b.set_training(false);
  const std::vector<std::int64_t> t{10, 700, 20, 900};
  auto x = Tensor<float>::from_host(Shape{4, 1, 8, 8}, std::vector<float>(256, 0.25f));
  for (int i = 0; i < 4; ++i) {  // a different image per sample
    auto h = x.to_host();
    for (int j = 0; j < 64; ++j) h[static_cast<std::size_t>(i * 64 + j)] = 0.01f * static_cast<float>((i + 1) * j % 17);
    x = Tensor<float>::from_host(x.shape(), h);
  }
  auto alone = [&](LearnedNet& net, std::int64_t row) {
    const auto xi = unet::gather_rows(x, std::vector<std::int64_t>{row});
    return net
        .forward(xi, Tensor<float>::from_host(Shape{1},
                                              std::vector<float>{static_cast<float>(t[static_cast<std::size_t>(row)])}))
        .to_host();
  };
  const std::vector<std::vector<float>> expected{alone(a, 0), alone(b, 1), alone(a, 2), alone(b, 3)};
  model::Progressive<LearnedNet> grouped(group::Partition{{0, 500, 1000}, {}}, std::vector<LearnedNet>{a, b});
  grouped.set_training(false);
  const auto y = grouped.forward(x, std::span<const std::int64_t>(t));
  REQUIRE(y.shape() == Shape{4, 2, 8, 8});
  const auto yh = y.to_host();
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t j = 0; j < 128; ++j) REQUIRE(yh[i * 128 + j] == doctest::Approx(expected[i][j]).epsilon(1e-5));
  const auto dx = grouped.backward(Tensor<float>::from_host(y.shape(), std::vector<float>(512, 1.0f)));
  CHECK(dx.shape() == x.shape());
}

TEST_CASE("FixedSmallVariance gives an epsilon model IDDPM's fixed small variance: beta~_t in closed form") {
  EpsilonOnly model;
  sample::FixedSmallVariance<EpsilonOnly> view(model);
  static_assert(unet::learns_variance_v<sample::FixedSmallVariance<EpsilonOnly>>);
  CHECK(view.prediction_type() == schedule::PredictionType::Epsilon);

  // DDPM's linear schedule, independently: beta_i = 1e-4 + i (0.02 - 1e-4) / 999, abar_i = prod (1 - beta).
  std::vector<double> abar(1000);
  double product = 1.0;
  for (std::size_t i = 0; i < abar.size(); ++i) abar[i] = (product *= 1.0 - (1e-4 + double(i) * (0.02 - 1e-4) / 999.0));
  auto small_variance = [&](std::size_t t) {  // beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
    return (1.0 - abar[t] / abar[t - 1]) * (1.0 - abar[t - 1]) / (1.0 - abar[t]);
  };

  const std::vector<std::int64_t> timesteps{1, 2, 500, 999};
  const std::int64_t n = static_cast<std::int64_t>(timesteps.size()), d = 2 * 3;
  Generator gen(5);
  std::vector<double> xs(static_cast<std::size_t>(n * d)), zs(xs.size());
  for (auto& v : xs) v = 2.0 * gen.uniform() - 1.0;
  for (auto& v : zs) v = 2.0 * gen.uniform() - 1.0;
  const auto x = Tensor<double, Cpu>::from_host(Shape{n, 2, 3, 1}, xs);
  const auto out = view.predict(x, std::span<const std::int64_t>(timesteps));
  REQUIRE(out.shape() == Shape{n, 4, 3, 1});
  const auto o = out.to_host();
  const auto chain = schedule::GaussianPosterior::of(schedule::Linear<1000>{});
  const auto sampler = sample::LearnedVarianceDdpm::from_schedule(schedule::Linear<1000>{}, -1, /*clip_x0=*/false);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto t = static_cast<std::size_t>(timesteps[static_cast<std::size_t>(i)]);
    INFO("timestep " << t);
    for (std::int64_t j = 0; j < d; ++j) {
      const auto k = static_cast<std::size_t>(i * d + j);
      CHECK(o[static_cast<std::size_t>(2 * d * i + j)] ==
            doctest::Approx(0.9 * xs[k] + 0.01 * double(t) / 1000.0).epsilon(1e-15));
      CHECK(o[static_cast<std::size_t>(2 * d * i + d + j)] == -1.0);
    }
    // The learned range at the view's v is log beta~_t.
    const double v = o[static_cast<std::size_t>(2 * d * i + d)];
    CHECK(chain.learned_log_variance(static_cast<std::int64_t>(t), v) ==
          doctest::Approx(std::log(small_variance(t))).epsilon(1e-12));

    // One ancestral step with the view's output and noise z, against DDPM's posterior mean and
    // standard deviation sqrt(beta~_t), all in closed form.
    const std::int64_t e = 999 - static_cast<std::int64_t>(t);
    REQUIRE(sampler.plan().timestep(e) == static_cast<std::int64_t>(t));
    const auto row = [&](const std::vector<double>& all, std::int64_t width) {
      return Tensor<double, Cpu>::from_host(
          Shape{1, width / 3, 3, 1}, std::vector<double>(all.begin() + i * width, all.begin() + (i + 1) * width));
    };
    const auto next = sampler.step(row(xs, d), row(o, 2 * d), e, view.prediction_type(), row(zs, d)).to_host();
    const double a_t = abar[t], a_s = abar[t - 1], beta = 1.0 - a_t / a_s;
    for (std::int64_t j = 0; j < d; ++j) {
      const auto k = static_cast<std::size_t>(i * d + j);
      const double eps = 0.9 * xs[k] + 0.01 * double(t) / 1000.0;
      const double x0 = (xs[k] - std::sqrt(1.0 - a_t) * eps) / std::sqrt(a_t);
      const double mean =
          std::sqrt(a_s) * beta / (1.0 - a_t) * x0 + std::sqrt(1.0 - beta) * (1.0 - a_s) / (1.0 - a_t) * xs[k];
      CHECK(next[static_cast<std::size_t>(j)] ==
            doctest::Approx(mean + std::sqrt(small_variance(t)) * zs[k]).epsilon(1e-11));
    }
  }
}

}  // namespace progdiff_tests_iddpm

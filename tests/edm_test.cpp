// EDM (Karras et al. 2022): preconditioning, the loss and its log-normal noise levels, the sigma
// ladder and Algorithm 1/2's Heun sampler, against tests/fixtures/edm/ (tools/fixtures/
// make_edm_fixtures.py: the paper's formulas in PyTorch float64 with autograd, and diffusers 0.27.2's
// EDMEulerScheduler); central differences of the loss through a convolution; the one boundary
// definition between sigmas and timesteps, and a multi-decoder U-Net routed by sigma.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "fixture_support.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/group/edm_partition.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/edm_preconditioning.hpp"
#include "progdiff/model/interval_routed.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/model/vp_view_of_edm.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/sample/edm_heun.hpp"
#include "progdiff/sample/euler.hpp"
#include "progdiff/sample/heun.hpp"
#include "progdiff/sample/prediction.hpp"
#include "progdiff/schedule/edm_sigma.hpp"
#include "progdiff/train/edm_objective.hpp"
#include "progdiff/train/trainer.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_edm {

using namespace progdiff;
using Cpu = backend::Cpu;
using TensorD = Tensor<double, Cpu>;

namespace {

using fixture_test::fixture_tensor;
using fixture_test::scaled_error;

const io::SafetensorsFile& fixture() {
  static const io::SafetensorsFile f =
      io::read_safetensors(std::string(PROGDIFF_FIXTURES_DIR) + "/edm/edm.safetensors");
  return f;
}
std::vector<double> values(const std::string& name) { return fixture().values<double>(name); }

double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]) / std::abs(b[i]));
  return worst;
}

// The fixture's network: F(u, c) = a u + b tanh(u) + e c per channel.
struct ChannelAffine {
  using value_type = double;
  using backend_type = Cpu;
  std::vector<double> a, b, e, da, db, de;
  std::vector<double> u_, c_;
  std::int64_t channels_ = 0, per_ = 0;

  TensorD forward(const TensorD& x, const TensorD& t) {
    channels_ = x.dim(1);
    per_ = x.numel() / (x.dim(0) * channels_);
    u_ = x.to_host();
    c_ = t.to_host();
    std::vector<double> y(u_.size());
    for (std::size_t i = 0; i < u_.size(); ++i) {
      const auto n = i / static_cast<std::size_t>(channels_ * per_),
                 ch = (i / static_cast<std::size_t>(per_)) % channels_;
      y[i] = a[ch] * u_[i] + b[ch] * std::tanh(u_[i]) + e[ch] * c_[n];
    }
    return TensorD::from_host(x.shape(), y);
  }
  TensorD backward(const TensorD& dy) {
    const auto g = dy.to_host();
    std::vector<double> dx(g.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
      const auto n = i / static_cast<std::size_t>(channels_ * per_),
                 ch = (i / static_cast<std::size_t>(per_)) % channels_;
      const double th = std::tanh(u_[i]);
      da[ch] += g[i] * u_[i];
      db[ch] += g[i] * th;
      de[ch] += g[i] * c_[n];
      dx[i] = g[i] * (a[ch] + b[ch] * (1.0 - th * th));
    }
    return TensorD::from_host(dy.shape(), dx);
  }
  void set_training(bool) {}
};

// A convolution and a noise-level bias: F(u, c) = conv(u) + 0.3 c.
struct ConvNet {
  using value_type = double;
  using backend_type = Cpu;
  nn::Conv2d<double, Cpu> conv{nn::Conv2dConfig{2, 2, 3, 1, 1, true}};

  TensorD forward(const TensorD& x, const TensorD& t) {
    TensorD y = conv.forward(x);
    auto v = y.to_host();
    const auto c = t.to_host();
    const std::size_t per = v.size() / c.size();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] += 0.3 * c[i / per];
    return TensorD::from_host(y.shape(), v);
  }
  TensorD backward(const TensorD& dy) { return conv.backward(dy); }
  void set_training(bool) {}
};

// The ideal denoiser of a few points: D(x; sigma) = sum_k softmax_k(-|x - y_k|^2 / (2 sigma^2)) y_k,
// called at the EDM grid's timesteps, as model::EdmPreconditioned is.
struct PointsDenoiser {
  schedule::EdmSigma grid;
  std::vector<double> points;  // K x d
  std::int64_t d = 0;

  TensorD at_sigmas(const TensorD& x, const std::vector<double>& sigmas) const {
    const auto v = x.to_host();
    const std::size_t n = sigmas.size(), dim = static_cast<std::size_t>(d), k = points.size() / dim;
    std::vector<double> out(v.size(), 0.0), logit(k);
    for (std::size_t i = 0; i < n; ++i) {
      double top = -INFINITY;
      for (std::size_t j = 0; j < k; ++j) {
        double s = 0.0;
        for (std::size_t m = 0; m < dim; ++m) s += std::pow(v[i * dim + m] - points[j * dim + m], 2);
        logit[j] = -s / (2.0 * sigmas[i] * sigmas[i]);
        top = std::max(top, logit[j]);
      }
      double z = 0.0;
      for (double& l : logit) z += (l = std::exp(l - top));
      for (std::size_t j = 0; j < k; ++j)
        for (std::size_t m = 0; m < dim; ++m) out[i * dim + m] += logit[j] / z * points[j * dim + m];
    }
    return TensorD::from_host(x.shape(), out);
  }
  TensorD predict(const TensorD& x, std::span<const double> t) const {
    std::vector<double> s;
    for (double v : t) s.push_back(grid.sigma_at(v));
    return at_sigmas(x, s);
  }
  TensorD predict(const TensorD& x, std::span<const std::int64_t> t) const {
    std::vector<double> s;
    for (auto v : t) s.push_back(grid.sigma_at(static_cast<double>(v)));
    return at_sigmas(x, s);
  }
  schedule::PredictionType prediction_type() const { return schedule::PredictionType::Sample; }
};

PointsDenoiser points_denoiser() {
  const auto& r = fixture().at("heun.points");
  return {schedule::EdmSigma(1000), values("heun.points"), r.shape[1] * r.shape[2] * r.shape[3]};
}

std::vector<double> slice(const std::vector<double>& v, std::size_t i, std::size_t size) {
  return {v.begin() + static_cast<std::ptrdiff_t>(i * size), v.begin() + static_cast<std::ptrdiff_t>((i + 1) * size)};
}

using Net =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<0>, unet::ElementType<double>>;
using Multi = unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                                     unet::ImageChannels<1>, unet::BaseChannels<8>, unet::GroupNormGroups<4>,
                                     unet::DropoutPercent<0>, unet::ElementType<double>, unet::Decoders<2>>;
using FloatNet = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                            unet::ImageChannels<1>, unet::BaseChannels<8>, unet::GroupNormGroups<4>>;

using EdmProgressive = model::EdmPreconditioned<model::Progressive<Net>>;
using EdmMulti = model::EdmPreconditioned<model::IntervalRouted<Multi>>;
static_assert(model::check_grouped_model<EdmProgressive>());
static_assert(model::check_grouped_model<EdmMulti>());
static_assert(sample::ContinuousDenoiser<EdmMulti, double, Cpu>);
static_assert(train::ObjectiveFor<train::EdmObjective, EdmMulti>);
static_assert(!model::GroupedModel<model::EdmPreconditioned<Net>>);  // a bare U-Net has no partition

}  // namespace

TEST_CASE("EDM preconditioning and loss weight: the paper's formulas and diffusers' EDMEulerScheduler") {
  const auto sigmas = values("precond.sigmas");
  const auto sds = values("precond.sigma_data");
  const schedule::EdmSigma grid(1000);
  for (std::size_t k = 0; k < sds.size(); ++k) {
    const model::EdmPreconditioning pre{sds[k]};
    std::vector<double> skip, out, in, noise, lambda;
    for (double s : sigmas) {
      const auto c = pre.at(s, grid);
      skip.push_back(c.c_skip), out.push_back(c.c_out), in.push_back(c.c_in), noise.push_back(c.c_noise);
      lambda.push_back(train::edm_loss_weight(s, sds[k]));
      // SigmaPlan's Edm parameterization (a raw network F run by the sampler) has the same Table 1 column
      const auto p =
          sample::SigmaPlan::edm(2, 0.002, 80.0, 7.0, sds[k]).preconditioning(s, sample::PredictionType::Epsilon);
      CHECK(p.c_skip == doctest::Approx(c.c_skip).epsilon(1e-15));
      CHECK(p.c_out == doctest::Approx(c.c_out).epsilon(1e-15));
      CHECK(p.c_in == doctest::Approx(c.c_in).epsilon(1e-15));
    }
    const std::size_t n = sigmas.size();
    CHECK(relative_error(skip, slice(values("precond.c_skip"), k, n)) < 1e-14);
    CHECK(relative_error(out, slice(values("precond.c_out"), k, n)) < 1e-14);
    CHECK(relative_error(in, slice(values("precond.c_in"), k, n)) < 1e-14);
    CHECK(scaled_error(noise, slice(values("precond.c_noise"), k, n)) < 1e-15);
    CHECK(relative_error(lambda, slice(values("precond.lambda"), k, n)) < 1e-14);
    if (k == 0 && fixture().contains("diffusers.c_skip")) {  // diffusers computes in float32
      CHECK(relative_error(skip, values("diffusers.c_skip")) < 1e-6);
      CHECK(relative_error(out, values("diffusers.c_out")) < 1e-6);
      CHECK(relative_error(in, values("diffusers.c_in")) < 1e-6);
      CHECK(scaled_error(noise, values("diffusers.c_noise")) < 1e-6);
    }
  }
  // the grid-timestep noise label is the grid's tau(sigma)
  const model::EdmPreconditioning grid_label{0.5, model::EdmNoiseLabel::GridTimestep};
  CHECK(grid_label.at(0.7, grid).c_noise == doctest::Approx(grid.timestep_of(0.7)).epsilon(1e-15));
  CHECK_THROWS_AS(model::EdmPreconditioning{}.at(0.0, grid), ConfigError);
}

TEST_CASE("EDM sigma ladder (eq. 5) against the reference and diffusers") {
  const auto n18 = sample::SigmaPlan::karras_sigmas(18, 0.002, 80.0, 7.0);
  auto ref = values("ladder.n18");
  CHECK(ref.back() == 0.0);
  ref.pop_back();
  CHECK(relative_error(n18, ref) < 1e-13);
  auto custom = values("ladder.n5_custom");
  custom.pop_back();
  CHECK(relative_error(sample::SigmaPlan::karras_sigmas(5, 0.01, 10.0, 3.0), custom) < 1e-13);

  const schedule::EdmSigma grid(1000);
  const auto plan = sample::SigmaPlan::edm_preconditioned(18, grid);
  CHECK(plan.parameterization() == sample::Parameterization::Preconditioned);
  CHECK(plan.steps() == 18);
  CHECK(plan.sigma(18) == 0.0);
  CHECK(plan.initial_scale() == doctest::Approx(80.0).epsilon(1e-15));
  for (std::int64_t i = 0; i < 18; ++i) {
    CHECK(plan.sigma(i) == doctest::Approx(ref[static_cast<std::size_t>(i)]).epsilon(1e-13));
    CHECK(grid.sigma_at(plan.timestep(i)) == doctest::Approx(plan.sigma(i)).epsilon(1e-13));
  }
  CHECK(plan.timestep(0) == doctest::Approx(999.0).epsilon(1e-12));
  CHECK(std::abs(plan.timestep(17)) < 1e-9);
  if (fixture().contains("diffusers.sigmas")) {
    auto d = values("diffusers.sigmas");
    CHECK(d.back() == 0.0);
    d.pop_back();
    CHECK(relative_error(n18, d) < 1e-6);
    // diffusers' timesteps are c_noise of its float32 sigmas
    const auto t = values("diffusers.timesteps");
    const auto edm = sample::SigmaPlan::edm(18);
    for (std::size_t i = 0; i < t.size(); ++i)
      CHECK(std::abs(edm.timestep(static_cast<std::int64_t>(i)) - t[i]) < 1e-6);
  }
}

TEST_CASE("EdmSigma: sigma and timestep convert exactly both ways, on schedule::EDM's grid") {
  const schedule::EdmSigma grid(1000);
  const auto taus = values("grid.taus");
  std::vector<double> s;
  for (double t : taus) s.push_back(grid.sigma_at(t));
  CHECK(relative_error(s, values("grid.sigmas_of_taus")) < 1e-13);
  const auto probe = values("grid.probe_sigmas");
  std::vector<double> t;
  for (double v : probe) t.push_back(grid.timestep_of(v));
  CHECK(scaled_error(t, values("grid.timesteps_of_probe")) < 1e-13);

  const schedule::EDM edm = grid.schedule();
  REQUIRE(edm.size() == 1000);
  double worst_sigma = 0.0, worst_tau = 0.0, worst_back = 0.0;
  for (std::int64_t i = 0; i < 1000; ++i) {
    const double si = grid.sigma_at(static_cast<double>(i));
    worst_sigma = std::max(worst_sigma, std::abs(si - edm.sigma(i)) / si);
    worst_tau = std::max(worst_tau, std::abs(grid.timestep_of(si) - static_cast<double>(i)));
    const double between = static_cast<double>(i) + 0.37;
    worst_back = std::max(worst_back, std::abs(grid.timestep_of(grid.sigma_at(between)) - between));
  }
  MESSAGE("grid vs schedule::EDM " << worst_sigma << ", tau round trip " << worst_tau << ", off-grid " << worst_back);
  CHECK(worst_sigma < 1e-13);
  CHECK(worst_tau < 1e-9);
  CHECK(worst_back < 1e-9);
  for (double v : {0.002, 0.01, 0.3, 1.0, 17.0, 80.0, 113.0})
    CHECK(grid.sigma_at(grid.timestep_of(v)) == doctest::Approx(v).epsilon(1e-13));
  CHECK_THROWS_AS(grid.timestep_of(0.0), ConfigError);
  CHECK_THROWS_AS(schedule::EdmSigma(1), ConfigError);
}

TEST_CASE("EDM interval boundaries: one definition in timesteps and sigmas, used by training and sampling") {
  const schedule::EdmSigma grid(1000);
  const group::Partition p{{0, 250, 620, 1000}, {}};
  // timesteps -> sigmas -> timesteps is the identity
  const auto bounds = group::sigma_boundaries(grid, p);
  REQUIRE(bounds.size() == 2);
  CHECK(group::partition_at_sigmas(grid, bounds).starts == p.starts);
  CHECK(bounds[0] == grid.sigma_at(250.0));
  // training routes integer timesteps by the partition; sampling routes sigmas by the grid: they agree
  for (std::int64_t i = 0; i < 1000; ++i) {
    const double s = grid.sigma_at(static_cast<double>(i));
    REQUIRE(group::group_of_sigma(grid, p, s) == p.group_of(i));
    REQUIRE(group::group_of_timestep(grid, p, static_cast<double>(i)) == p.group_of(i));
  }
  // off the grid: below a boundary sigma is the lower group, at or above it the upper one
  CHECK(group::group_of_sigma(grid, p, bounds[0] * (1 - 1e-6)) == 0);
  CHECK(group::group_of_sigma(grid, p, bounds[0]) == 1);
  CHECK(group::group_of_sigma(grid, p, bounds[1] * (1 + 1e-6)) == 2);
  CHECK(group::group_of_sigma(grid, p, 1e-4) == 0);   // below sigma_min
  CHECK(group::group_of_sigma(grid, p, 113.0) == 2);  // a churned sigma above sigma_max
  // boundaries given in sigmas (as a paper's table gives them) start at the first grid sigma at or above
  const std::vector<double> paper{0.5, 5.0};
  const group::Partition q = group::partition_at_sigmas(grid, paper);
  REQUIRE(q.groups() == 3);
  for (std::size_t k = 0; k < paper.size(); ++k) {
    const std::int64_t start = q.starts[k + 1];
    CHECK(grid.sigma_at(static_cast<double>(start)) >= paper[k]);
    CHECK(grid.sigma_at(static_cast<double>(start - 1)) < paper[k]);
  }
  CHECK(group::partition_at_sigmas(grid, group::sigma_boundaries(grid, q)).starts == q.starts);
  CHECK_THROWS_AS(group::partition_at_sigmas(grid, std::vector<double>{5.0, 0.5}), ConfigError);
  CHECK_THROWS_AS(group::partition_at_sigmas(grid, std::vector<double>{0.5, 0.5000001}),
                  ConfigError);  // an empty group
  CHECK_THROWS_AS(group::partition_at_sigmas(grid, std::vector<double>{100.0}), ConfigError);
  CHECK_THROWS_AS(group::group_of_sigma(grid, group::Partition{{0, 10, 20}, {}}, 1.0), ConfigError);
}

TEST_CASE("log-normal noise levels on the grid: cell masses against the reference, moments of the draws") {
  const schedule::EdmSigma grid(1000);
  const auto starts = fixture().values<std::int64_t>("lognormal.starts");
  const auto mass = values("lognormal.group_mass");
  const auto index = fixture().values<std::int64_t>("lognormal.index");
  const auto cell = values("lognormal.mass");
  double total = 0.0;
  for (std::size_t g = 0; g + 1 < starts.size(); ++g) {
    const train::LogNormalTimesteps s(grid, starts[g], starts[g + 1]);
    CHECK(s.group_mass() == doctest::Approx(mass[g]).epsilon(1e-12));
    CHECK(s.weight() ==
          doctest::Approx(mass[g] * 1000.0 / static_cast<double>(starts[g + 1] - starts[g])).epsilon(1e-12));
    total += s.group_mass();
    const auto p = s.probabilities();
    for (std::size_t k = 0; k < index.size(); ++k)
      if (index[k] >= starts[g] && index[k] < starts[g + 1])
        CHECK(p[static_cast<std::size_t>(index[k] - starts[g])] * s.group_mass() ==
              doctest::Approx(cell[k]).epsilon(1e-10));
  }
  CHECK(total == doctest::Approx(1.0).epsilon(1e-14));
  // the draws over the whole grid have ln(sigma) ~ N(-1.2, 1.2^2) up to the grid's rounding
  train::LogNormalTimesteps all(grid, 0, 1000, {.p_mean = -1.2, .p_std = 1.2, .group_mass_weights = false});
  Generator gen(11);
  const auto d = all.draw(gen, 40000);
  double m = 0.0, m2 = 0.0;
  for (auto t : d.timesteps) {
    const double l = std::log(grid.sigma_at(static_cast<double>(t)));
    m += l, m2 += l * l;
  }
  m /= 40000.0;
  const double sd = std::sqrt(m2 / 40000.0 - m * m);
  MESSAGE("ln sigma of 40000 draws: mean " << m << ", sd " << sd);
  CHECK(std::abs(m + 1.2) < 4 * 1.2 / std::sqrt(40000.0));
  CHECK(std::abs(sd - 1.2) < 0.02);
  for (double w : d.weights) REQUIRE(w == 1.0);
}

TEST_CASE("EDM loss of a fixed model against the reference: value, D and the gradients (autograd)") {
  const auto& f = fixture();
  const schedule::EdmSigma grid(1000);
  ChannelAffine net;
  net.a = values("loss.a"), net.b = values("loss.b"), net.e = values("loss.e");
  net.da = net.db = net.de = {0.0, 0.0};
  model::EdmPreconditioned<ChannelAffine> m(net, grid);
  const TensorD x0 = fixture_tensor<double>(f, "loss.x0"), noise = fixture_tensor<double>(f, "loss.noise");
  train::TimestepDraw draw{f.values<std::int64_t>("loss.timesteps"), values("loss.importance")};
  TensorD d;
  const auto loss = train::EdmObjective{}(grid.schedule(), x0, noise, draw, schedule::PredictionType::Sample, {},
                                          [&](const TensorD& x_t) {
                                            d = m.forward(x_t, std::span<const std::int64_t>(draw.timesteps));
                                            return d;
                                          });
  CHECK(loss.loss == doctest::Approx(values("loss.value")[0]).epsilon(1e-12));
  CHECK(scaled_error(loss.per_sample, values("loss.per_sample")) < 1e-12);
  CHECK(scaled_error(d.to_host(), values("loss.d")) < 1e-12);
  CHECK(scaled_error(loss.grad.to_host(), values("loss.grad_d")) < 1e-12);
  const TensorD dx = m.backward(loss.grad);
  CHECK(scaled_error(dx.to_host(), values("loss.grad_x")) < 1e-12);
  CHECK(scaled_error(m.inner().da, values("loss.grad_a")) < 1e-12);
  CHECK(scaled_error(m.inner().db, values("loss.grad_b")) < 1e-12);
  CHECK(scaled_error(m.inner().de, values("loss.grad_e")) < 1e-12);
  // a VP schedule is refused (s_t != 1), and so is a model whose output is not D
  CHECK_THROWS_AS(train::EdmObjective{}(schedule::VP(1000), x0, noise, draw, schedule::PredictionType::Sample, {},
                                        [&](const TensorD& x_t) { return x_t; }),
                  ConfigError);
  CHECK_THROWS_AS(train::EdmObjective{}(grid.schedule(), x0, noise, draw, schedule::PredictionType::Epsilon, {},
                                        [&](const TensorD& x_t) { return x_t; }),
                  ConfigError);
}

TEST_CASE("EDM loss through a convolution: gradients match central differences") {
  const auto& f = fixture();
  const schedule::EdmSigma grid(1000);
  Generator gen(3);
  ConvNet net;
  net.conv.initialize(gen);
  model::EdmPreconditioned<ConvNet> m(std::move(net), grid);
  const TensorD x0 = fixture_tensor<double>(f, "loss.x0"), noise = fixture_tensor<double>(f, "loss.noise");
  const train::TimestepDraw draw{f.values<std::int64_t>("loss.timesteps"), values("loss.importance")};
  const auto sched = grid.schedule();
  auto loss_of = [&] {
    return train::EdmObjective{}(sched, x0, noise, draw, schedule::PredictionType::Sample, {}, [&](const TensorD& x_t) {
      return m.forward(x_t, std::span<const std::int64_t>(draw.timesteps));
    });
  };
  auto& w = m.inner().conv.weight();
  auto& b = m.inner().conv.bias();
  w.zero_grad();
  b.zero_grad();
  const auto l = loss_of();
  m.backward(l.grad);
  const auto gw = w.grad.to_host(), gb = b.grad.to_host();
  double worst = 0.0, scale = 0.0;
  auto central = [&](nn::Parameter<double, Cpu>& p, std::size_t i) {
    auto v = p.value.to_host();
    const double h = 1e-6, keep = v[i];
    v[i] = keep + h;
    p.value.copy_from(TensorD::from_host(p.value.shape(), v));
    const double up = loss_of().loss;
    v[i] = keep - h;
    p.value.copy_from(TensorD::from_host(p.value.shape(), v));
    const double down = loss_of().loss;
    v[i] = keep;
    p.value.copy_from(TensorD::from_host(p.value.shape(), v));
    return (up - down) / (2 * h);
  };
  for (std::size_t i = 0; i < gw.size(); i += 5) {
    worst = std::max(worst, std::abs(central(w, i) - gw[i]));
    scale = std::max(scale, std::abs(gw[i]));
  }
  for (std::size_t i = 0; i < gb.size(); ++i) {
    worst = std::max(worst, std::abs(central(b, i) - gb[i]));
    scale = std::max(scale, std::abs(gb[i]));
  }
  MESSAGE("EDM loss, conv parameters: largest |FD - backward| " << worst << " of scale " << scale);
  CHECK(worst < 1e-7 * std::max(1.0, scale));
  // the input gradient of D: <g, D(x)> against central differences in x
  const std::vector<double> sigmas{0.05, 0.9, 30.0};
  const TensorD x = fixture_tensor<double>(f, "loss.noise");
  const TensorD g = fixture_tensor<double>(f, "loss.x0");
  m.forward_sigma(x, sigmas);
  const auto dx = m.backward(g).to_host();
  const auto gv = g.to_host();
  double worst_x = 0.0;
  for (std::size_t i = 0; i < dx.size(); i += 7) {
    auto xv = x.to_host();
    const double h = 1e-6, keep = xv[i];
    auto at = [&](double v) {
      xv[i] = v;
      const auto dv = m.forward_sigma(TensorD::from_host(x.shape(), xv), sigmas).to_host();
      double s = 0.0;
      for (std::size_t j = 0; j < dv.size(); ++j) s += gv[j] * dv[j];
      return s;
    };
    const double fd = (at(keep + h) - at(keep - h)) / (2 * h);
    worst_x = std::max(worst_x, std::abs(fd - dx[i]));
  }
  MESSAGE("D's input gradient: largest |FD - backward| " << worst_x);
  CHECK(worst_x < 1e-7);
}

TEST_CASE("EDM Heun (Algorithm 1) and its churn (Algorithm 2) against the reference trajectories") {
  const auto& f = fixture();
  PointsDenoiser den = points_denoiser();
  const TensorD x_T = fixture_tensor<double>(f, "heun.x_T");
  const std::size_t size = x_T.size();
  const schedule::EdmSigma grid(1000);
  const auto plan = sample::SigmaPlan::edm_preconditioned(18, grid);

  SUBCASE("deterministic: every step's start and the result; sample::Heun computes the same") {
    const sample::EdmHeun heun(plan);
    CHECK(heun.evaluations() == 35);
    const auto hats = values("heun.hats");
    auto st = sample::resume(heun, x_T.clone(), {0, 0}, {0, 1}, 0);
    double worst = 0.0;
    for (std::int64_t e = 0; e < heun.evaluations(); ++e) {
      if (e % 2 == 0)  // the start of step e / 2
        worst = std::max(worst, scaled_error(st.x.to_host(), slice(hats, static_cast<std::size_t>(e / 2), size)));
      sample::advance(heun, den, st);
    }
    const double final_error = scaled_error(st.x.to_host(), values("heun.final"));
    MESSAGE("Algorithm 1: largest step error " << worst << ", result " << final_error);
    CHECK(worst < 1e-11);
    CHECK(final_error < 1e-11);
    const sample::Heun plain(plan);
    auto other = sample::resume(plain, x_T.clone(), {0, 0}, {0, 1}, 0);
    sample::run(plain, den, other);
    CHECK(scaled_error(other.x.to_host(), st.x.to_host()) < 1e-14);
  }
  SUBCASE("stochastic: the reference's churn noise given to each corrector") {
    const auto c = values("churn.settings");
    const sample::EdmHeun heun(plan, {.s_churn = c[0], .s_tmin = c[1], .s_tmax = c[2], .s_noise = c[3]});
    const auto noise = values("churn.noise"), hats = values("churn.hats");
    int churned = 0;
    for (std::size_t i = 0; i < 18; ++i) churned += heun.sigma_hats()[i] > plan.sigma(static_cast<std::int64_t>(i));
    MESSAGE(churned << " of 18 steps churned");
    CHECK(churned > 0);
    CHECK(churned < 18);
    CHECK(heun.sigma_hats()[0] == plan.sigma(0));  // 80 > S_tmax: x_T is x^_0
    auto st = sample::resume(heun, x_T.clone(), {0, 0}, {0, 1}, 0);
    double worst = 0.0;
    for (std::int64_t e = 0; e < heun.evaluations(); ++e) {
      if (e % 2 == 0)
        worst = std::max(worst, scaled_error(st.x.to_host(), slice(hats, static_cast<std::size_t>(e / 2), size)));
      const TensorD out = sample::evaluate(heun, den, st);
      if (e % 2 == 0) {
        sample::step(heun, st, out, schedule::PredictionType::Sample);
        continue;
      }
      // the corrector of step i adds step i + 1's churn noise
      const TensorD z = TensorD::from_host(x_T.shape(), slice(noise, static_cast<std::size_t>(e / 2 + 1), size));
      sample::step(heun, st, out, schedule::PredictionType::Sample, &z);
    }
    const double final_error = scaled_error(st.x.to_host(), values("churn.final"));
    MESSAGE("Algorithm 2: largest step error " << worst << ", result " << final_error);
    CHECK(worst < 1e-11);
    CHECK(final_error < 1e-11);
  }
  SUBCASE("churn needs a plan that maps any sigma to a timestep") {
    std::vector<double> alphas;
    for (int i = 0; i < 100; ++i) alphas.push_back(std::exp(-0.05 * (i + 1)));
    CHECK_THROWS_AS(sample::EdmHeun(sample::SigmaPlan::karras(alphas, 10), {.s_churn = 10}), ConfigError);
    CHECK_NOTHROW(sample::EdmHeun(sample::SigmaPlan::karras(alphas, 10)));
  }
}

TEST_CASE("EDM Euler against diffusers' EDMEulerScheduler (S_churn = 0)") {
  if (!fixture().contains("diffusers.euler")) {
    MESSAGE("SKIPPED: the fixture was made without diffusers");
    return;
  }
  PointsDenoiser den = points_denoiser();
  const TensorD x_T = fixture_tensor<double>(fixture(), "heun.x_T");
  const sample::Euler euler(sample::SigmaPlan::edm_preconditioned(18, schedule::EdmSigma(1000)));
  const auto ref = values("diffusers.euler");
  auto st = sample::resume(euler, x_T.clone(), {0, 0}, {0, 1}, 0);
  double worst = 0.0;
  for (std::int64_t e = 0; e <= euler.evaluations(); ++e) {
    worst = std::max(worst, scaled_error(st.x.to_host(), slice(ref, static_cast<std::size_t>(e), x_T.size())));
    if (e < euler.evaluations()) sample::advance(euler, den, st);
  }
  MESSAGE("Euler vs diffusers (float32): largest error " << worst << " of scale");
  CHECK(worst < 2e-6);
}

TEST_CASE("EdmPreconditioned routes a multi-decoder U-Net by sigma and samples with EdmHeun") {
  const schedule::EdmSigma grid(1000);
  const group::Partition p = group::partition_at_sigmas(grid, std::vector<double>{0.8});
  Generator gen(5);
  Multi net(Multi::default_widths(8, {8, 4}), Multi::default_config());
  net.initialize(gen);
  EdmMulti m(model::IntervalRouted<Multi>(std::move(net), p), grid);
  const double b = group::sigma_boundaries(grid, p)[0];
  const std::vector<double> sigmas{0.3, b * (1 - 1e-7), b, 20.0};
  const std::vector<std::int64_t> groups{0, 0, 1, 1};
  Generator xs(9);
  TensorD x({4, 1, 8, 8});
  std::vector<double> xv(x.size());
  for (auto& v : xv) v = 2.0 * xs.uniform() - 1.0;
  x = TensorD::from_host(x.shape(), xv);
  const TensorD d = m.denoise(x, sigmas);
  // D_i = c_skip x_i + c_out F(c_in x_i, c_noise) with F the decoder of the sample's interval
  const std::size_t per = 64;
  for (std::size_t i = 0; i < 4; ++i) {
    const auto c = m.coefficients(sigmas[i]);
    std::vector<double> xi(xv.begin() + static_cast<std::ptrdiff_t>(i * per),
                           xv.begin() + static_cast<std::ptrdiff_t>((i + 1) * per));
    std::vector<double> in = xi;
    for (auto& v : in) v *= c.c_in;
    const std::vector<std::int64_t> g{groups[i]};
    const auto fv = m.inner()
                        .inner()
                        .forward(TensorD::from_host({1, 1, 8, 8}, in), TensorD::from_host({1}, {c.c_noise}), g)
                        .to_host();
    std::vector<double> expect(per);
    for (std::size_t j = 0; j < per; ++j) expect[j] = c.c_skip * xi[j] + c.c_out * fv[j];
    CHECK(scaled_error(slice(d.to_host(), i, per), expect) < 1e-12);
  }
  // the sampler's continuous timesteps route the same way
  std::vector<double> taus;
  for (double s : sigmas) taus.push_back(grid.timestep_of(s));
  CHECK(scaled_error(m.predict(x, std::span<const double>(taus)).to_host(), d.to_host()) < 1e-12);
  // a churned sampler leaves the grid at the top (sigma above 80) and stays finite
  const sample::EdmHeun heun(sample::SigmaPlan::edm_preconditioned(6, grid), {.s_churn = 6});
  CHECK(heun.sigma_hats()[0] > 80.0);
  const TensorD out = heun.sample<double>(m, {2, 1, 8, 8}, 3);
  for (double v : out.to_host()) REQUIRE(std::isfinite(v));
  const auto desc = m.describe();
  CHECK(desc.at("edm.sigma_data") == model::exact(0.5));
  CHECK(desc.at("model.kind") == "multi_decoder");
}

TEST_CASE("the trainers take EdmObjective: log-normal timesteps by default, per-group and mixed batches") {
  data::ImageDataset images;
  images.count = 16;
  images.channels = 1;
  images.height = images.width = 8;
  Generator g(3);
  for (std::int64_t i = 0; i < images.count * 64; ++i)
    images.pixels.push_back(data::byte_to_unit_range(static_cast<std::uint8_t>(g.below(256))));
  images.labels.assign(16, 0);
  const schedule::EdmSigma grid(1000);
  const auto sched = grid.schedule();
  train::TrainOptions o;
  o.steps = 3;
  o.batch_size = 4;
  o.use_ema = false;
  o.progress.mode = train::ProgressOptions::Mode::Off;

  Generator init(1);
  FloatNet net;
  net.initialize(init);
  using Unified = model::EdmPreconditioned<model::Progressive<FloatNet>>;
  Unified unified(model::Progressive<FloatNet>(std::move(net), grid.size()), grid);
  CHECK(unified.prediction_type() == schedule::PredictionType::Sample);
  train::Trainer<Unified, schedule::EDM, train::EdmObjective> t(unified, sched, images, o, train::BatchMode::PerGroup);
  const auto report = t.run();
  REQUIRE(report.steps.size() == 3);
  for (const auto& s : report.steps) CHECK((std::isfinite(s.loss) && s.loss > 0));

  Multi multi(Multi::default_widths(8, {8, 4}), Multi::default_config());
  Generator init2(2);
  multi.initialize(init2);
  EdmMulti routed(
      model::IntervalRouted<Multi>(std::move(multi), group::partition_at_sigmas(grid, std::vector<double>{0.8})), grid);
  train::Trainer<EdmMulti, schedule::EDM, train::EdmObjective> mixed(routed, sched, images, o, train::BatchMode::Mixed);
  const auto r2 = mixed.run();
  REQUIRE(r2.steps.size() == 3);
  CHECK((std::isfinite(r2.steps.back().loss) && r2.steps.back().loss > 0));
  // a two-group Progressive in per-group batches: each group's batch stays in its sigma interval
  const group::Partition halves = group::partition_at_sigmas(grid, std::vector<double>{0.8});
  Generator copies(4);
  using Grouped = model::EdmPreconditioned<model::Progressive<FloatNet>>;
  Grouped grouped(model::Progressive<FloatNet>::copies_of(unified.inner().denoiser(0), halves, copies), grid);
  train::Trainer<Grouped, schedule::EDM, train::EdmObjective> per_group(grouped, sched, images, o,
                                                                        train::BatchMode::PerGroup);
  const auto r3 = per_group.run();
  REQUIRE(r3.steps.size() == 3);
  CHECK(r3.steps.back().group_losses.size() == 2);

  // checkpoints carry the preconditioning: a resume continues, another sigma_data is refused by name
  const auto dir = std::filesystem::temp_directory_path() / "progdiff_edm_test";
  std::filesystem::remove_all(dir);
  train::TrainOptions c = o;
  c.steps = 2;
  c.checkpoint_path = dir / "edm.safetensors";
  train::Trainer<EdmMulti, schedule::EDM, train::EdmObjective>(routed, sched, images, c, train::BatchMode::Mixed).run();
  c.steps = 3;
  const auto resumed =
      train::Trainer<EdmMulti, schedule::EDM, train::EdmObjective>(routed, sched, images, c, train::BatchMode::Mixed)
          .run();
  CHECK(resumed.first_step == 2);
  CHECK(resumed.steps.size() == 1);
  Multi other(Multi::default_widths(8, {8, 4}), Multi::default_config());
  other.initialize(init2);
  EdmMulti wider(
      model::IntervalRouted<Multi>(std::move(other), group::partition_at_sigmas(grid, std::vector<double>{0.8})), grid,
      {.sigma_data = 0.7});
  c.steps = 4;
  try {
    train::Trainer<EdmMulti, schedule::EDM, train::EdmObjective>(wider, sched, images, c, train::BatchMode::Mixed,
                                                                 train::EdmObjective{.sigma_data = 0.7})
        .run();
    FAIL("a checkpoint of another sigma_data was loaded");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("edm.sigma_data") != std::string::npos);
  }
  std::filesystem::remove_all(dir);

  // an objective whose sigma_data differs from the model's is refused when the trainer asks it for samplers
  CHECK_THROWS_AS((train::Trainer<EdmMulti, schedule::EDM, train::EdmObjective>(
                      routed, sched, images, o, train::BatchMode::Mixed, train::EdmObjective{.sigma_data = 0.7})),
                  ConfigError);
}

TEST_CASE("the VP view of an EDM denoiser: EDM's input scaling, its x0 and the VP epsilon in closed form") {
  // F(u, c) = a u + b tanh(u) + e c per channel, wrapped in the preconditioning: D is known in
  // closed form at every sigma. Everything below is computed here, in double, from the papers'
  // formulas: the grid's sigma (EDM eq. 5 with sigma_min 0.002, sigma_max 80, rho 7 over 1000
  // points), Table 1's coefficients with sigma_data 0.5, and the VP reading abar = 1 / (1 + sigma^2).
  const schedule::EdmSigma grid(1000);
  ChannelAffine net;
  net.a = {0.7, -0.4}, net.b = {0.3, 0.5}, net.e = {0.2, -0.1};
  model::EdmPreconditioned<ChannelAffine> edm(net, grid);
  model::VpViewOfEdm<model::EdmPreconditioned<ChannelAffine>> view(edm);
  CHECK(view.prediction_type() == schedule::PredictionType::Sample);
  const schedule::EDM vp = grid.schedule();

  const std::vector<std::int64_t> timesteps{0, 1, 250, 500, 998, 999};
  const std::int64_t n = static_cast<std::int64_t>(timesteps.size()), channels = 2, per = 3, d = channels * per;
  Generator gen(17);
  std::vector<double> y(static_cast<std::size_t>(n * d)), noise(y.size());
  for (auto& v : y) v = 2.0 * gen.uniform() - 1.0;
  for (auto& v : noise) v = 2.0 * gen.uniform() - 1.0;
  auto sigma_of = [](double tau) {
    const double lo = std::pow(0.002, 1.0 / 7.0), hi = std::pow(80.0, 1.0 / 7.0);
    return std::pow(lo + tau / 999.0 * (hi - lo), 7.0);
  };
  // x_t = sqrt(abar) y + sqrt(1 - abar) n, as VP code noises the test images.
  std::vector<double> x_t(y.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const double sigma = sigma_of(static_cast<double>(timesteps[static_cast<std::size_t>(i)]));
    const double abar = 1.0 / (1.0 + sigma * sigma);
    INFO("timestep " << timesteps[static_cast<std::size_t>(i)]);
    CHECK(vp.alpha_bar(timesteps[static_cast<std::size_t>(i)]) == doctest::Approx(abar).epsilon(1e-12));
    CHECK(std::sqrt((1.0 - abar) / abar) == doctest::Approx(sigma).epsilon(1e-12));
    for (std::int64_t j = 0; j < d; ++j) {
      const auto k = static_cast<std::size_t>(i * d + j);
      x_t[k] = std::sqrt(abar) * y[k] + std::sqrt(1.0 - abar) * noise[k];
    }
  }
  const TensorD x = TensorD::from_host(Shape{n, channels, per, 1}, x_t);
  const std::vector<double> x0_hat = view.predict(x, std::span<const std::int64_t>(timesteps)).to_host();
  REQUIRE(x0_hat.size() == x_t.size());

  double worst_x0 = 0.0, worst_eps = 0.0, worst_input = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double sigma = sigma_of(static_cast<double>(timesteps[static_cast<std::size_t>(i)]));
    const double abar = 1.0 / (1.0 + sigma * sigma), sd = 0.5;
    const double c_skip = sd * sd / (sigma * sigma + sd * sd), c_out = sigma * sd / std::sqrt(sigma * sigma + sd * sd),
                 c_in = 1.0 / std::sqrt(sigma * sigma + sd * sd), c_noise = 0.25 * std::log(sigma);
    const sample::VpPrediction to = sample::vp_prediction(abar, view.prediction_type());
    for (std::int64_t j = 0; j < d; ++j) {
      const auto k = static_cast<std::size_t>(i * d + j);
      const auto ch = static_cast<std::size_t>(j / per);
      const double x_edm = x_t[k] / std::sqrt(abar);  // EDM's input, y + sigma n
      worst_input = std::max(worst_input, std::abs(x_edm - (y[k] + sigma * noise[k])) / (1.0 + sigma));
      const double u = c_in * x_edm;
      const double expected = c_skip * x_edm + c_out * (net.a[ch] * u + net.b[ch] * std::tanh(u) + net.e[ch] * c_noise);
      worst_x0 = std::max(worst_x0, std::abs(x0_hat[k] - expected) / std::max(1.0, std::abs(expected)));
      // The VP epsilon of that x0 estimate, as the loss and VP samplers read a Sample prediction.
      const double eps = (x_t[k] - std::sqrt(abar) * expected) / std::sqrt(1.0 - abar);
      const double eps_view = to.eps.sample * x_t[k] + to.eps.output * x0_hat[k];
      worst_eps = std::max(worst_eps, std::abs(eps_view - eps) / std::max(1.0, std::abs(eps)));
    }
  }
  MESSAGE("VP view of EDM: x0 " << worst_x0 << ", epsilon " << worst_eps << ", EDM input " << worst_input);
  CHECK(worst_input < 1e-13);
  CHECK(worst_x0 < 1e-12);
  CHECK(worst_eps < 1e-10);
  // The batch and its timesteps must agree.
  CHECK_THROWS_AS(view.predict(x, std::span<const std::int64_t>(timesteps).first(2)), ShapeError);
}

}  // namespace progdiff_tests_edm

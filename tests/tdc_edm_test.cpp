// TDC on an EDM base (tdc/pipeline.hpp with train::EdmObjective, tdc/group_loss.hpp's EdmNoising):
// the inner network F of D = c_skip x + c_out F(c_in x; c_noise) is scored by its MSE against
// EDM's effective target, which is checked here to equal EDM's lambda-weighted loss of D computed
// through model::EdmPreconditioned and train::EdmObjective, and a closed form at F = 0; each group
// fine-tunes on EDM's loss of its own grid timesteps (the logged loss recomputed here from the
// recorded batches), the pruned groups meet their budgets and the assembled wrapper routes by
// sigma; the schemes are chosen on the validation slice alone; tdc.json records the objective.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/data/validation_split.hpp"
#include "progdiff/model/edm_preconditioning.hpp"
#include "progdiff/schedule/continuous.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/schedule/edm_sigma.hpp"
#include "progdiff/tdc/validation.hpp"
#include "progdiff/train/edm_objective.hpp"
#include "tdc_support.hpp"
#include "train_support.hpp"

namespace progdiff_tests_tdc_edm {

namespace {

namespace model = progdiff::model;
namespace train = progdiff::train;
namespace tdc = progdiff::tdc;
namespace data = progdiff::data;
namespace schedule = progdiff::schedule;
namespace fs = std::filesystem;
using progdiff::Shape;
using Cpu = progdiff::backend::Cpu;
using Tensor = progdiff::Tensor<float, Cpu>;
using Net = tdc_test::Net;
using EdmModel = model::EdmPreconditioned<model::Progressive<Net>>;
constexpr std::int64_t kImageValues = 64;  // 1 x 8 x 8
constexpr std::int64_t kGrid = 60;
constexpr double kSigmaData = 0.5;

const train_test::ScratchDir scratch("progdiff_tdc_edm_test");

schedule::EdmSigma grid() { return schedule::EdmSigma(kGrid); }

// tdc_test's base U-Net (weights from seed 5) inside EDM's preconditioning on a 60-point grid.
EdmModel edm_base(model::EdmPreconditioning preconditioning = {}) {
  progdiff::Generator gen(5);
  Net net;
  net.initialize(gen);
  return EdmModel(model::Progressive<Net>(std::move(net), kGrid), grid(), preconditioning);
}

// Three groups of the grid's timesteps (low sigma first), budgets 0.6, 0.8 and 1 of the base.
progdiff::group::Partition three_groups() {
  progdiff::group::Partition p;
  p.starts = {0, 20, 40, kGrid};
  p.budgets = {0.6, 0.8, 1.0};
  return p;
}

tdc::TdcOptions options(const fs::path& dir, tdc::TdcPruning pruning, std::int64_t finetune_steps) {
  tdc::TdcOptions o = tdc_test::small_options(dir, pruning, finetune_steps);
  o.validation_images = 8;
  return o;
}

// The first `count` images of `images` as a [count, 1, 8, 8] tensor.
Tensor first_images(const data::ImageDataset& images, std::int64_t count) {
  std::vector<float> px(images.pixels.begin(), images.pixels.begin() + count * kImageValues);
  return Tensor::from_host(Shape{count, 1, 8, 8}, px);
}

// The noise GroupBatches draws for images 0 .. count - 1 of a batch keyed by (seed, stream).
Tensor batch_noise(std::int64_t count, std::uint64_t seed, std::uint64_t stream) {
  Tensor n(Shape{count, 1, 8, 8});
  for (std::int64_t i = 0; i < count; ++i)
    Cpu::normal<float>(static_cast<std::size_t>(kImageValues), seed, stream,
                       static_cast<std::uint64_t>(i * kImageValues), n.data() + i * kImageValues);
  return n;
}

// Every parameter gradient of `net`, by name.
std::map<std::string, std::vector<float>> gradients(Net& net) {
  std::map<std::string, std::vector<float>> g;
  net.visit_parameters([&](const std::string& name, auto& p) { g[name] = p.grad.to_host(); }, std::string());
  return g;
}

// One call of the training objective: the batch, its noise, its draw and the model's output D.
struct EdmCall {
  std::vector<float> x0, noise, output;
  std::vector<std::int64_t> timesteps;
  std::vector<double> weights;
};

// EDM's objective, recording every call it serves (the trainer keeps a copy of the objective, so
// the record is shared). Derived from train::EdmObjective: the pipeline takes it as an EDM objective.
struct RecordingEdm : train::EdmObjective {
  std::shared_ptr<std::vector<EdmCall>> calls = std::make_shared<std::vector<EdmCall>>();

  template <class T, class B, schedule::NoiseSchedule S, class Forward>
  progdiff::loss::LossResult<T, B> operator()(const S& s, const progdiff::Tensor<T, B>& x0,
                                              const progdiff::Tensor<T, B>& noise, const train::TimestepDraw& draw,
                                              schedule::PredictionType prediction,
                                              const progdiff::loss::WeightingConfig& weighting,
                                              Forward&& forward) const {
    EdmCall call{x0.to_host(), noise.to_host(), {}, draw.timesteps, draw.weights};
    auto result = train::EdmObjective::operator()(s, x0, noise, draw, prediction, weighting,
                                                  [&](const progdiff::Tensor<T, B>& x) {
                                                    progdiff::Tensor<T, B> d = forward(x);
                                                    call.output = d.to_host();
                                                    return d;
                                                  });
    calls->push_back(std::move(call));
    return result;
  }
};

// EDM's loss of one call from eq. 8: the batch mean of w_i lambda(sigma_i) mean_j (D_ij - y_ij)^2,
// lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2, sigma_i the grid's at the timestep.
double edm_loss_by_hand(const EdmCall& c) {
  const auto n = c.timesteps.size();
  const auto d = static_cast<std::size_t>(kImageValues);
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double sigma = grid().sigma_at(static_cast<double>(c.timesteps[i]));
    const double lambda = (sigma * sigma + kSigmaData * kSigmaData) / (sigma * kSigmaData * sigma * kSigmaData);
    double mse = 0.0;
    for (std::size_t j = 0; j < d; ++j) {
      const double e = static_cast<double>(c.output[i * d + j]) - static_cast<double>(c.x0[i * d + j]);
      mse += e * e;
    }
    total += c.weights[i] * lambda * mse / static_cast<double>(d);
  }
  return total / static_cast<double>(n);
}

// Bit-for-bit comparisons run on one thread (the float convolution's weight gradient sums
// per-thread partial sums; tests/tdc_test.cpp).
struct OneThread {
  int before = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(before); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;
};

// Fine-tuning that moves the weights, with checkpoints every 2 steps, for the resume tests.
tdc::TdcOptions resume_options(const fs::path& dir, tdc::TdcPruning pruning, std::int64_t steps) {
  tdc::TdcOptions o = options(dir, pruning, steps);
  o.finetune.seed = 11;
  o.finetune.lr.lr = 1e-3;
  o.finetune.ema.decay = 0.9;
  o.finetune.checkpoint_every = 2;
  return o;
}

// The standard normal's distribution function.
double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

}  // namespace

TEST_CASE("the EDM group loss of F is EDM's loss of D through the preconditioned wrapper, at every sigma") {
  // both noise labels: the paper's c_noise = ln(sigma) / 4 and the grid timestep tau(sigma)
  for (const auto label : {model::EdmNoiseLabel::LogSigma, model::EdmNoiseLabel::GridTimestep}) {
    CAPTURE(static_cast<int>(label));
    const model::EdmPreconditioning pre{kSigmaData, label};
    auto m = edm_base(pre);
    Net& net = m.inner().denoiser(0);
    const auto images = tdc_test::patterns(2, 0.3);
    const Tensor y = first_images(images, 2);
    const std::uint64_t seed = 3, stream = 17;
    const Tensor n = batch_noise(2, seed, stream);
    for (std::int64_t t : {0, 7, 21, 35, 50, 59}) {
      CAPTURE(t);
      const std::vector<std::int64_t> ts{t, t};
      const auto batch =
          tdc::GroupBatches<float, Cpu>::at_timesteps(tdc::EdmNoising{pre, grid()}, images, 0, ts, seed, stream);
      const double f_loss = batch.loss(net);
      // EDM's loss of D = c_skip x + c_out F(c_in x; c_noise) on the same y and n, through the wrapper
      train::TimestepDraw draw;
      draw.timesteps = ts;
      draw.weights = {1.0, 1.0};
      const auto d_loss = train::EdmObjective{}(grid().schedule(), y, n, draw, schedule::PredictionType::Sample, {},
                                                [&](const Tensor& x) { return m.forward(x, std::span(ts)); });
      CHECK(std::isfinite(f_loss));
      CHECK(f_loss > 0.0);
      // At sigma = 0.002, D - y is c_out (F - target) with c_out = 0.002: the float rounding of
      // x = y + sigma n (about 6e-8) is then some 3e-5 of it, so the loss agrees to about 1e-4 there.
      CHECK(f_loss == doctest::Approx(d_loss.loss).epsilon(t == 0 ? 1e-3 : 1e-5));
    }
  }
}

TEST_CASE("the EDM effective target is (sigma y / sigma_data - sigma_data n) / sqrt(sigma^2 + sigma_data^2)") {
  // F = 0 (conv_out zeroed): F's loss is the target's mean square, and EDM's loss of D = c_skip x
  // is lambda mean (c_skip x - y)^2; both by hand, in double, against the group loss.
  auto m = edm_base();
  Net& net = m.inner().denoiser(0);
  net.visit_parameters(
      [](const std::string& name, auto& p) {
        if (name.rfind("conv_out", 0) == 0) p.value.copy_from(Tensor::zeros(p.value.shape()));
      },
      std::string());
  const auto images = tdc_test::patterns(3, 1.1);
  const std::uint64_t seed = 9, stream = 4;
  const std::vector<float> y = first_images(images, 3).to_host(), n = batch_noise(3, seed, stream).to_host();
  const std::vector<std::int64_t> ts{3, 30, 57};
  const auto batch = tdc::GroupBatches<float, Cpu>::at_timesteps(tdc::EdmNoising{model::EdmPreconditioning{}, grid()},
                                                                 images, 0, ts, seed, stream);
  double target_square = 0.0, d_loss = 0.0;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const double s = grid().sigma_at(static_cast<double>(ts[i])), sd = kSigmaData;
    const double root = std::sqrt(s * s + sd * sd), c_skip = sd * sd / (s * s + sd * sd);
    const double lambda = (s * s + sd * sd) / (s * sd * s * sd);
    double a = 0.0, b = 0.0;
    for (std::size_t j = 0; j < static_cast<std::size_t>(kImageValues); ++j) {
      const double yj = y[i * kImageValues + j], nj = n[i * kImageValues + j];
      const double target = (s * yj / sd - sd * nj) / root;
      a += target * target;
      const double e = c_skip * (yj + s * nj) - yj;
      b += lambda * e * e;
    }
    target_square += a / kImageValues;
    d_loss += b / kImageValues;
  }
  target_square /= static_cast<double>(ts.size());
  d_loss /= static_cast<double>(ts.size());
  CHECK(target_square == doctest::Approx(d_loss).epsilon(1e-9));  // eq. 8's identity, in closed form
  CHECK(batch.loss(net) == doctest::Approx(target_square).epsilon(1e-5));
}

TEST_CASE("the EDM group loss's gradients are those of EDM's loss through the wrapper's backward") {
  auto m = edm_base();
  Net& net = m.inner().denoiser(0);
  const auto images = tdc_test::patterns(3, 0.7);
  const std::uint64_t seed = 5, stream = 2;
  const std::vector<std::int64_t> ts{5, 25, 45};
  train::TimestepDraw draw;
  draw.timesteps = ts;
  draw.weights = {1.0, 1.0, 1.0};
  net.visit_parameters([](const std::string&, auto& p) { p.zero_grad(); }, std::string());
  const auto l = train::EdmObjective{}(grid().schedule(), first_images(images, 3), batch_noise(3, seed, stream), draw,
                                       schedule::PredictionType::Sample, {},
                                       [&](const Tensor& x) { return m.forward(x, std::span(ts)); });
  m.backward(l.grad);
  const auto want = gradients(net);
  const auto batch = tdc::GroupBatches<float, Cpu>::at_timesteps(tdc::EdmNoising{model::EdmPreconditioning{}, grid()},
                                                                 images, 0, ts, seed, stream);
  CHECK(batch.loss_and_gradients(net) == doctest::Approx(l.loss).epsilon(1e-5));
  const auto got = gradients(net);
  for (const auto& [name, w] : want) {
    CAPTURE(name);
    const std::vector<float>& g = got.at(name);
    REQUIRE(g.size() == w.size());
    double largest = 0.0, worst = 0.0;
    for (std::size_t k = 0; k < w.size(); ++k) {
      largest = std::max(largest, std::fabs(static_cast<double>(w[k])));
      worst = std::max(worst, std::fabs(static_cast<double>(g[k]) - static_cast<double>(w[k])));
    }
    CHECK(largest > 0.0);
    CHECK(worst <= 1e-4 * largest + 1e-9);
  }
}

TEST_CASE("TDC on an EDM base: budgets met, fine-tuning on EDM's loss of each group, routing by sigma") {
  const auto train_split = tdc_test::patterns(32, 0.0, true);
  const auto [fit, validation] = data::split_validation(train_split, 8);
  const auto partition = three_groups();
  const auto s = grid().schedule();
  auto base = edm_base();
  const Shape image{1, 1, 8, 8};
  const auto base_flops = static_cast<double>(base.inner().denoiser(0).flops(image));
  constexpr std::int64_t kSteps = 2;
  RecordingEdm objective;
  std::vector<std::pair<std::int64_t, double>> logged;  // (group, the step's loss) as the trainer reports it
  auto r = tdc::run_tdc(base, partition, s, fit, validation,
                        options(scratch("finetune"), tdc::TdcPruning::Magnitude, kSteps), objective,
                        [&](std::int64_t g, const train::StepInfo& info) { logged.emplace_back(g, info.loss); });
  REQUIRE(r.model.has_value());
  REQUIRE(r.report.groups.size() == 3);
  CHECK(r.model->group_count() == 3);
  CHECK(r.model->partition().starts == partition.starts);

  // the pruned groups are within their budgets, smaller than the base
  for (std::int64_t g = 0; g < 3; ++g)
    CHECK(static_cast<double>(r.model->flops(image, g)) <=
          partition.budgets[static_cast<std::size_t>(g)] * base_flops * (1 + 1e-9));
  CHECK(r.report.groups[0].parameters < r.report.base_parameters);
  CHECK(std::isfinite(r.report.groups[0].pruned_loss));
  CHECK(std::isfinite(r.report.groups[2].finetuned_loss));

  // every fine-tuning step's logged loss is EDM's loss of the group's own timesteps, weight 1
  const auto& calls = *objective.calls;
  REQUIRE(calls.size() == static_cast<std::size_t>(3 * kSteps));
  REQUIRE(logged.size() == calls.size());
  for (std::size_t k = 0; k < calls.size(); ++k) {
    const std::int64_t g = logged[k].first;
    CAPTURE(k);
    CHECK(g == static_cast<std::int64_t>(k) / kSteps);
    REQUIRE(calls[k].timesteps.size() == 4);
    for (std::size_t i = 0; i < calls[k].timesteps.size(); ++i) {
      CHECK(calls[k].timesteps[i] >= partition.begin(g));
      CHECK(calls[k].timesteps[i] < partition.end(g));
      CHECK(calls[k].weights[i] == 1.0);
    }
    CHECK(logged[k].second == doctest::Approx(edm_loss_by_hand(calls[k])).epsilon(1e-4));
  }

  // a sample whose sigma lies in group g is denoised by group g's net: the assembled wrapper
  // against each group's net alone in a one-group wrapper
  const Tensor x = first_images(tdc_test::patterns(2, 0.9), 2);
  std::vector<std::vector<float>> alone;  // alone[h]: group h's net at sigma of group g
  for (std::int64_t g = 0; g < 3; ++g) {
    CAPTURE(g);
    const double sigma = grid().sigma_at(0.5 * static_cast<double>(partition.begin(g) + partition.end(g) - 1));
    const std::vector<double> sigmas{sigma, sigma};
    const std::vector<float> routed = r.model->denoise(x, sigmas).to_host();
    std::vector<double> differences;
    for (std::int64_t h = 0; h < 3; ++h) {
      progdiff::Generator gen(1);
      EdmModel one(model::Progressive<Net>(model::clone_net(r.model->inner().denoiser(h), gen), kGrid), grid());
      const std::vector<float> d = one.denoise(x, sigmas).to_host();
      double worst = 0.0;
      for (std::size_t j = 0; j < d.size(); ++j)
        worst = std::max(worst, std::fabs(static_cast<double>(d[j]) - static_cast<double>(routed[j])));
      differences.push_back(worst);
    }
    CHECK(differences[static_cast<std::size_t>(g)] == 0.0);
    for (std::int64_t h = 0; h < 3; ++h)
      if (h != g) CHECK(differences[static_cast<std::size_t>(h)] > 1e-6);
  }
}

TEST_CASE("an EDM group fine-tunes on EDM's log-normal sigmas restricted to the group's grid timesteps") {
  const auto train_split = tdc_test::patterns(16, 0.0, true);
  const auto [fit, validation] = data::split_validation(train_split, 8);
  const auto s = grid().schedule();
  auto base = edm_base();
  const train::EdmObjective objective{};
  tdc::TdcPipeline<Net, schedule::EDM, train::EdmObjective> pipeline(
      base, three_groups(), s, fit, validation, options(scratch("sampler"), tdc::TdcPruning::None, 0));
  const auto partition = three_groups();
  for (std::int64_t g = 0; g < 3; ++g) {
    CAPTURE(g);
    auto sampler = pipeline.group_sampler(g);
    CHECK(sampler.range() == std::pair<std::int64_t, std::int64_t>{0, kGrid});  // a one-group model's range
    const std::int64_t begin = partition.begin(g), end = partition.end(g);
    // ln(sigma) ~ N(P_mean, P_std^2), each sigma rounded to the nearest grid timestep in tau: the
    // cell of timestep i is [sigma(i - 1/2), sigma(i + 1/2)), the first from 0, the last to infinity
    auto below = [&](std::int64_t i) {
      if (i <= 0) return 0.0;
      if (i >= kGrid) return 1.0;
      return normal_cdf((std::log(grid().sigma_at(static_cast<double>(i) - 0.5)) - objective.sigmas.p_mean) /
                        objective.sigmas.p_std);
    };
    const double mass = below(end) - below(begin);
    progdiff::Generator gen(11, static_cast<std::uint64_t>(g));
    constexpr std::int64_t kDraws = 40000;
    const train::TimestepDraw d = sampler.draw(gen, kDraws);
    std::vector<double> count(static_cast<std::size_t>(end - begin), 0.0);
    for (std::size_t k = 0; k < d.timesteps.size(); ++k) {
      REQUIRE(d.timesteps[k] >= begin);
      REQUIRE(d.timesteps[k] < end);
      CHECK(d.weights[k] == 1.0);  // the group trains alone: no mass weight on its loss
      count[static_cast<std::size_t>(d.timesteps[k] - begin)] += 1.0;
    }
    for (std::int64_t i = begin; i < end; ++i) {
      const double p = (below(i + 1) - below(i)) / mass;
      // four standard errors of a frequency of kDraws draws
      CHECK(std::fabs(count[static_cast<std::size_t>(i - begin)] / kDraws - p) <=
            4.0 * std::sqrt(p * (1 - p) / kDraws) + 1e-12);
    }
  }
}

TEST_CASE("TDC on an EDM base scores schemes on the validation slice and nothing else") {
  const auto train_split = tdc_test::patterns(32, 0.0, true);
  const auto s = grid().schedule();
  auto base = edm_base();
  const fs::path first = scratch("proxy");
  tdc::run_tdc(base, three_groups(), s, train_split, options(first, tdc::TdcPruning::Proxy, 0));

  // other images in the part that is fine-tuned on: the same schemes with the same losses
  auto other_fit = train_split;
  const auto replacement = tdc_test::patterns(32, 2.1, true);
  std::copy(replacement.pixels.begin(), replacement.pixels.begin() + 24 * kImageValues, other_fit.pixels.begin());
  auto base2 = edm_base();
  const fs::path fit_changed = scratch("fit_changed");
  tdc::run_tdc(base2, three_groups(), s, other_fit, options(fit_changed, tdc::TdcPruning::Proxy, 0));
  CHECK(tdc_test::banks(fit_changed) == tdc_test::banks(first));

  // other validation images: other losses (the slice is what is scored)
  auto other_validation = train_split;
  std::copy(replacement.pixels.begin() + 24 * kImageValues, replacement.pixels.end(),
            other_validation.pixels.begin() + 24 * kImageValues);
  auto base3 = edm_base();
  const fs::path validation_changed = scratch("validation_changed");
  tdc::run_tdc(base3, three_groups(), s, other_validation, options(validation_changed, tdc::TdcPruning::Proxy, 0));
  CHECK(tdc_test::banks(validation_changed) != tdc_test::banks(first));

  // a poisoned validation slice (NaN pixels): no scheme has a finite loss, and the search says so
  auto poisoned = train_split;
  for (std::size_t i = 24 * kImageValues; i < poisoned.pixels.size(); ++i)
    poisoned.pixels[i] = std::numeric_limits<float>::quiet_NaN();
  auto base4 = edm_base();
  CHECK_THROWS_WITH_AS(
      tdc::run_tdc(base4, three_groups(), s, poisoned, options(scratch("poisoned"), tdc::TdcPruning::Proxy, 0)),
      doctest::Contains("no scheme with a finite loss"), progdiff::ConfigError);
}

TEST_CASE("tdc.json records a non-default objective; a rerun with another objective is refused by name") {
  const auto train_split = tdc_test::patterns(16, 0.0, true);
  const fs::path dir = scratch("manifest");
  auto edm = edm_base();
  tdc::run_tdc(edm, three_groups(), grid().schedule(), train_split, options(dir, tdc::TdcPruning::None, 0));
  const nlohmann::json written = nlohmann::json::parse(tdc_test::read_text(dir / "tdc.json"));
  CHECK(written.at("objective") == "edm");

  // the same groups of the same net trained on L_simple (a 60-step schedule): refused, naming both
  auto simple = tdc_test::base_model<Net, schedule::Linear<kGrid>>();
  CHECK_THROWS_WITH_AS(tdc::run_tdc(simple, three_groups(), schedule::Linear<kGrid>(), train_split,
                                    options(dir, tdc::TdcPruning::None, 0)),
                       doctest::Contains("objective = \"edm\", this run has \"simple\""), progdiff::ConfigError);

  // an L_simple run records no objective (its tdc.json is as before), and an EDM rerun is refused
  const fs::path simple_dir = scratch("manifest_simple");
  auto simple2 = tdc_test::base_model<Net, schedule::Linear<kGrid>>();
  tdc::run_tdc(simple2, three_groups(), schedule::Linear<kGrid>(), train_split,
               options(simple_dir, tdc::TdcPruning::None, 0));
  CHECK_FALSE(nlohmann::json::parse(tdc_test::read_text(simple_dir / "tdc.json")).contains("objective"));
  auto edm2 = edm_base();
  CHECK_THROWS_WITH_AS(
      tdc::run_tdc(edm2, three_groups(), grid().schedule(), train_split, options(simple_dir, tdc::TdcPruning::None, 0)),
      doctest::Contains("objective = nothing, this run has \"edm\""), progdiff::ConfigError);

  // the EDM run again: its groups are done and reused
  auto edm3 = edm_base();
  const auto again =
      tdc::run_tdc(edm3, three_groups(), grid().schedule(), train_split, options(dir, tdc::TdcPruning::None, 0));
  REQUIRE(again.report.groups.size() == 3);
  CHECK(again.report.groups[1].reused);

  // a malformed tdc.json is a FormatError naming the file and the position
  {
    std::ofstream out(dir / "tdc.json", std::ios::binary | std::ios::trunc);
    out << "{\n  \"format\": ";
  }
  auto edm4 = edm_base();
  try {
    tdc::run_tdc(edm4, three_groups(), grid().schedule(), train_split, options(dir, tdc::TdcPruning::None, 0));
    FAIL("a malformed tdc.json was accepted");
  } catch (const progdiff::FormatError& e) {
    const std::string what = e.what();
    CHECK(what.find("TDC manifest " + (dir / "tdc.json").string()) != std::string::npos);
    CHECK(what.find("malformed JSON at line 2") != std::string::npos);
  }
}

TEST_CASE(
    "an EDM run killed in a group's fine-tuning resumes to the same weights; groups run apart assemble the same") {
  OneThread one_thread;
  const auto train_split = tdc_test::patterns(24, 0.0, true);
  const auto s = grid().schedule();
  auto run = [&](const tdc::TdcOptions& o, tdc::TdcStepCallback cb = {}) {
    auto base = edm_base();  // a fresh base, as a new process would load it
    return tdc::run_tdc(base, three_groups(), s, train_split, o, train::EdmObjective{}, std::move(cb));
  };
  auto whole = run(resume_options(scratch("resume_whole"), tdc::TdcPruning::Taylor, 6));
  REQUIRE(whole.model.has_value());
  const auto expected = train_test::all_weights<float>(*whole.model);

  const fs::path dir = scratch("resume_killed");
  const auto o = resume_options(dir, tdc::TdcPruning::Taylor, 6);
  CHECK_THROWS_AS(run(o,
                      [](std::int64_t g, const train::StepInfo& info) {
                        if (g == 1 && info.step == 3) throw train_test::Killed{};
                      }),
                  train_test::Killed);
  CHECK(fs::exists(dir / "group0" / "done.json"));
  CHECK(!fs::exists(dir / "group1" / "done.json"));
  CHECK(fs::exists(dir / "group1" / "checkpoint.safetensors"));
  std::vector<std::int64_t> trained;
  auto resumed = run(o, [&](std::int64_t g, const train::StepInfo&) {
    if (trained.empty() || trained.back() != g) trained.push_back(g);
  });
  CHECK(trained == std::vector<std::int64_t>{1, 2});  // group 0 is not trained again
  CHECK(resumed.report.groups[0].reused);
  REQUIRE(resumed.model.has_value());
  CHECK(train_test::all_weights<float>(*resumed.model) == expected);

  const fs::path apart = scratch("parallel_split");
  for (std::int64_t g : {2, 0, 1}) {
    auto og = resume_options(apart, tdc::TdcPruning::Taylor, 6);
    og.only_group = g;
    auto r = run(og);
    CHECK(!r.model.has_value());
    REQUIRE(r.report.groups.size() == 1);
  }
  auto assembled = run(resume_options(apart, tdc::TdcPruning::Taylor, 6));
  REQUIRE(assembled.model.has_value());
  for (const auto& g : assembled.report.groups) CHECK(g.reused);
  CHECK(train_test::all_weights<float>(*assembled.model) == expected);
  CHECK(assembled.report.average_flops == whole.report.average_flops);
}

}  // namespace progdiff_tests_tdc_edm

// TDC on an IDDPM base (tdc/pipeline.hpp with train::HybridObjective, tdc/prediction_head_loss.hpp):
// a learned-variance U-Net (2C outputs) pruned per group keeps its 2C outputs, each group is
// fine-tuned on L_simple + 0.001 L_vlb of its own timesteps (checked against IDDPM's formulas
// evaluated here with the fixture-verified terms of loss/vlb_terms.hpp), the schemes are scored by
// the prediction head's MSE (a closed form) on the validation slice and on nothing else.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/data/validation_split.hpp"
#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/distributed/single_process.hpp"
#include "progdiff/group/flops_interval.hpp"
#include "progdiff/loss/vlb_terms.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/schedule/gaussian_posterior.hpp"
#include "progdiff/tdc/fan_out.hpp"
#include "progdiff/tdc/validation.hpp"
#include "progdiff/train/hybrid_objective.hpp"
#include "progdiff/unet/unet.hpp"
#include "tdc_support.hpp"
#include "train_support.hpp"

namespace progdiff_tests_tdc_hybrid {

namespace {

namespace unet = progdiff::unet;
namespace model = progdiff::model;
namespace train = progdiff::train;
namespace tdc = progdiff::tdc;
namespace data = progdiff::data;
namespace schedule = progdiff::schedule;
namespace fs = std::filesystem;
using progdiff::Shape;
using Cpu = progdiff::backend::Cpu;
using Tensor = progdiff::Tensor<float, Cpu>;

// tdc_test::Net with IDDPM's variance head: 2 output channels for 1 image channel.
using HybridNet =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<0>, unet::LearnedVariance>;
using CosineSchedule = schedule::Cosine<60>;
constexpr std::int64_t kImageValues = 64;  // 1 x 8 x 8

tdc::TdcOptions options(const fs::path& dir, tdc::TdcPruning pruning, std::int64_t finetune_steps) {
  tdc::TdcOptions o = tdc_test::small_options(dir, pruning, finetune_steps);
  o.validation_images = 8;
  return o;
}

const train_test::ScratchDir scratch("progdiff_tdc_hybrid_test");

// One call of the training objective: the batch, its noise, its timesteps and the model's output.
struct ObjectiveCall {
  std::vector<float> x0, noise, output;
  Shape output_shape;
  std::vector<std::int64_t> timesteps;
};

// IDDPM's hybrid objective, recording every call it serves (the trainer keeps a copy of the
// objective, so the record is shared).
struct RecordingHybrid {
  train::HybridObjective hybrid{};
  std::shared_ptr<std::vector<ObjectiveCall>> calls = std::make_shared<std::vector<ObjectiveCall>>();

  template <class Model>
  static constexpr bool check_model() {
    return train::HybridObjective::check_model<Model>();
  }

  template <class T, class B, schedule::NoiseSchedule S, class Forward>
  progdiff::loss::LossResult<T, B> operator()(const S& s, const progdiff::Tensor<T, B>& x0,
                                              const progdiff::Tensor<T, B>& noise, const train::TimestepDraw& draw,
                                              schedule::PredictionType prediction,
                                              const progdiff::loss::WeightingConfig& weighting,
                                              Forward&& forward) const {
    ObjectiveCall call{x0.to_host(), noise.to_host(), {}, {}, draw.timesteps};
    auto result = hybrid(s, x0, noise, draw, prediction, weighting, [&](const progdiff::Tensor<T, B>& x_t) {
      progdiff::Tensor<T, B> out = forward(x_t);
      call.output = out.to_host();
      call.output_shape = out.shape();
      return out;
    });
    calls->push_back(std::move(call));
    return result;
  }
};

// IDDPM's L_hybrid of one call, the batch mean of L_simple + lambda T L_t, from the paper's
// formulas: x0_hat = (x_t - sqrt(1 - a) eps_hat) / sqrt(a), Sigma = exp(f log beta_t + (1 - f) log
// beta~_t) with f = (v + 1) / 2, L_t the KL of the posterior q(x_{t-1} | x_t, x0) from
// N(mu(x0_hat), Sigma) (t > 0) or the discretized decoder's negative log-likelihood (t = 0), in
// bits per dimension; the terms are loss/vlb_terms.hpp's, verified against IDDPM fixtures.
double hybrid_loss_by_hand(const ObjectiveCall& c, const schedule::GaussianPosterior& chain, double lambda) {
  const auto n = c.timesteps.size();
  const auto d = static_cast<std::size_t>(kImageValues);
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t t = c.timesteps[i];
    const double a = chain.alpha_bar(t);
    double simple = 0.0, vlb_nats = 0.0;
    for (std::size_t j = 0; j < d; ++j) {
      const double x0 = c.x0[i * d + j], eps = c.noise[i * d + j];
      const double eps_hat = c.output[2 * d * i + j], v = c.output[2 * d * i + d + j];
      simple += (eps_hat - eps) * (eps_hat - eps);
      const double x_t = std::sqrt(a) * x0 + std::sqrt(1.0 - a) * eps;
      const double x0_hat = (x_t - std::sqrt(1.0 - a) * eps_hat) / std::sqrt(a);
      const double mean = chain.mean_x0(t) * x0_hat + chain.mean_xt(t) * x_t;
      const double f = (v + 1.0) / 2.0;
      const double log_var = f * std::log(chain.beta(t)) + (1.0 - f) * chain.log_variance_clipped(t);
      if (t == 0)
        vlb_nats -= progdiff::loss::discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var).value;
      else
        vlb_nats += progdiff::loss::normal_kl(chain.mean_x0(t) * x0 + chain.mean_xt(t) * x_t,
                                              chain.log_variance_clipped(t), mean, log_var)
                        .value;
    }
    const double vlb_bits = vlb_nats / (static_cast<double>(d) * std::numbers::ln2);
    total += simple / static_cast<double>(d) + lambda * static_cast<double>(chain.size()) * vlb_bits;
  }
  return total / static_cast<double>(n);
}

}  // namespace

TEST_CASE("the prediction-head loss of a 2C output is the MSE of its first C channels; v gets no gradient") {
  // two samples, each a prediction channel of two values, then its variance channel
  const Tensor output = Tensor::from_host(Shape{2, 2, 1, 2}, {0.5f, -1.0f, 9.0f, 9.0f, 2.0f, 0.0f, -7.0f, 3.0f});
  const Tensor target = Tensor::from_host(Shape{2, 1, 1, 2}, {0.0f, 1.0f, 1.0f, 0.5f});
  const std::vector<double> weights{1.0, 3.0};
  const auto l = tdc::prediction_head_loss<HybridNet>(output, target, weights);
  // (1/N) sum_i w_i mean_j (o_ij - t_ij)^2: sample 0 (0.25 + 4) / 2, sample 1 (1 + 0.25) / 2
  CHECK(l.loss == doctest::Approx((1.0 * 4.25 / 2 + 3.0 * 1.25 / 2) / 2).epsilon(1e-7));
  REQUIRE(l.grad.shape() == output.shape());
  // d/do_ij = 2 w_i (o_ij - t_ij) / (N D) on the prediction, 0 on v
  const std::vector<float> expected{0.25f, -1.0f, 0.0f, 0.0f, 1.5f, -0.75f, 0.0f, 0.0f};
  const std::vector<float> grad = l.grad.to_host();
  for (std::size_t k = 0; k < grad.size(); ++k) CHECK(grad[k] == doctest::Approx(expected[k]).epsilon(1e-6));
  // a C-output net: the whole output is the prediction
  const Tensor head = Tensor::from_host(Shape{1, 1, 1, 2}, {0.5f, -1.0f});
  const Tensor one = Tensor::from_host(Shape{1, 1, 1, 2}, {0.0f, 1.0f});
  CHECK(tdc::prediction_head_loss<tdc_test::Net>(head, one, std::vector<double>{1.0}).loss ==
        doctest::Approx(4.25 / 2).epsilon(1e-7));
}

TEST_CASE("the held-out loss and gradients of a learned-variance net are those of its prediction head alone") {
  const CosineSchedule s;
  const auto images = tdc_test::patterns(8, 0.0);
  auto base = tdc_test::base_model<HybridNet, CosineSchedule>();
  HybridNet& net = base.denoiser(0);
  // The reference: the C-output U-Net of the same blocks and weights, conv_out reduced to the
  // prediction's rows; its loss is the plain epsilon MSE.
  std::map<std::string, std::vector<float>> weights;
  net.visit_parameters([&](const std::string& name, auto& p) { weights[name] = p.value.to_host(); }, std::string());
  tdc_test::Net head;
  progdiff::Generator gen(1);
  head.initialize(gen);
  head.visit_parameters(
      [&](const std::string& name, auto& p) {
        REQUIRE(weights.count(name) == 1);
        std::vector<float> w = weights[name];
        REQUIRE(w.size() >= p.value.size());
        w.resize(p.value.size());  // conv_out: the first C of its 2C output rows (weight and bias)
        p.value.copy_from(Tensor::from_host(p.value.shape(), w));
      },
      std::string());
  const auto set = tdc::GroupBatches<float, Cpu>::held_out(s, base.prediction_type(), images, 10, 30, 8, 4, 3, 11);
  const double loss = set.loss(net);
  CHECK(std::isfinite(loss));
  CHECK(loss == doctest::Approx(set.loss(head)).epsilon(1e-6));
  CHECK(set.loss_and_gradients(net) == doctest::Approx(loss).epsilon(1e-6));
  set.loss_and_gradients(head);
  std::map<std::string, std::vector<float>> head_grads;
  head.visit_parameters([&](const std::string& name, auto& p) { head_grads[name] = p.grad.to_host(); }, std::string());
  // every parameter's gradient is the reference's; conv_out's variance rows get none
  net.visit_parameters(
      [&](const std::string& name, auto& p) {
        CAPTURE(name);
        const std::vector<float> g = p.grad.to_host();
        const std::vector<float>& want = head_grads[name];
        // to the float rounding of the two nets' kernels, relative to the parameter's largest gradient
        double largest = 0.0, worst = 0.0, beyond = 0.0;
        for (std::size_t k = 0; k < want.size(); ++k) {
          largest = std::max(largest, std::fabs(static_cast<double>(want[k])));
          worst = std::max(worst, std::fabs(static_cast<double>(g[k]) - static_cast<double>(want[k])));
        }
        for (std::size_t k = want.size(); k < g.size(); ++k) beyond = std::max(beyond, std::fabs(double(g[k])));
        CHECK(worst <= 1e-4 * largest + 1e-9);
        CHECK(beyond == 0.0);
      },
      std::string());
}

TEST_CASE("TDC with IDDPM's hybrid objective: pruned groups keep 2C outputs and fine-tune on L_hybrid") {
  const CosineSchedule s;
  const auto train_split = tdc_test::patterns(32, 0.0, true);
  const auto [fit, validation] = data::split_validation(train_split, 8);
  const auto partition = tdc_test::three_groups<CosineSchedule>();
  auto base = tdc_test::base_model<HybridNet, CosineSchedule>();
  const Shape image{1, 1, 8, 8};
  const auto base_flops = static_cast<double>(base.denoiser(0).flops(image));
  constexpr std::int64_t kSteps = 2;
  RecordingHybrid objective;
  std::vector<std::pair<std::int64_t, double>> logged;  // (group, the step's loss) as the trainer reports it
  auto r = tdc::run_tdc(base, partition, s, fit, validation,
                        options(scratch("finetune"), tdc::TdcPruning::Magnitude, kSteps), objective,
                        [&](std::int64_t g, const train::StepInfo& info) { logged.emplace_back(g, info.loss); });
  REQUIRE(r.model.has_value());
  REQUIRE(r.report.groups.size() == 3);

  // every group's denoiser predicts 2C channels; the pruned ones are within their FLOPs budgets
  const Tensor x = Tensor::from_host(Shape{2, 1, 8, 8}, std::vector<float>(2 * kImageValues, 0.25f));
  for (std::int64_t g = 0; g < 3; ++g) {
    const std::vector<std::int64_t> t{partition.begin(g), partition.begin(g)};
    const Tensor out = r.model->denoiser(g).forward(x, progdiff::model::timestep_tensor<float, Cpu>(t));
    CHECK(out.shape() == Shape{2, 2, 8, 8});
    CHECK(static_cast<double>(r.model->denoiser(g).flops(image)) <=
          partition.budgets[static_cast<std::size_t>(g)] * base_flops * (1 + 1e-9));
  }
  CHECK(r.report.groups[0].parameters < r.report.base_parameters);

  // every fine-tuning step's loss is L_simple + 0.001 L_vlb of the group's own timesteps
  const auto& calls = *objective.calls;
  REQUIRE(calls.size() == static_cast<std::size_t>(3 * kSteps));
  REQUIRE(logged.size() == calls.size());
  const auto chain = schedule::GaussianPosterior::of(s);
  for (std::size_t k = 0; k < calls.size(); ++k) {
    const std::int64_t g = logged[k].first;
    CAPTURE(k);
    CHECK(g == static_cast<std::int64_t>(k) / kSteps);
    CHECK(calls[k].output_shape == Shape{4, 2, 8, 8});
    for (std::int64_t t : calls[k].timesteps) {
      CHECK(t >= partition.begin(g));
      CHECK(t < partition.end(g));
    }
    CHECK(logged[k].second == doctest::Approx(hybrid_loss_by_hand(calls[k], chain, 0.001)).epsilon(1e-5));
  }
}

TEST_CASE("TDC with IDDPM's hybrid objective scores schemes on the validation slice and nothing else") {
  const CosineSchedule s;
  const auto train_split = tdc_test::patterns(32, 0.0, true);
  auto base = tdc_test::base_model<HybridNet, CosineSchedule>();
  const fs::path first = scratch("proxy");
  tdc::run_tdc(base, tdc_test::three_groups<CosineSchedule>(), s, train_split,
               options(first, tdc::TdcPruning::Proxy, 0), train::HybridObjective{});

  // other images in the part that is fine-tuned on: the same schemes with the same losses
  auto other_fit = train_split;
  const auto replacement = tdc_test::patterns(32, 2.1, true);
  std::copy(replacement.pixels.begin(), replacement.pixels.begin() + 24 * kImageValues, other_fit.pixels.begin());
  auto base2 = tdc_test::base_model<HybridNet, CosineSchedule>();
  const fs::path fit_changed = scratch("fit_changed");
  tdc::run_tdc(base2, tdc_test::three_groups<CosineSchedule>(), s, other_fit,
               options(fit_changed, tdc::TdcPruning::Proxy, 0), train::HybridObjective{});
  CHECK(tdc_test::banks(fit_changed) == tdc_test::banks(first));

  // a poisoned validation slice (NaN pixels): no scheme has a finite loss, and the search says so
  auto poisoned = train_split;
  for (std::size_t i = 24 * kImageValues; i < poisoned.pixels.size(); ++i)
    poisoned.pixels[i] = std::numeric_limits<float>::quiet_NaN();
  auto base3 = tdc_test::base_model<HybridNet, CosineSchedule>();
  CHECK_THROWS_WITH_AS(tdc::run_tdc(base3, tdc_test::three_groups<CosineSchedule>(), s, poisoned,
                                    options(scratch("poisoned"), tdc::TdcPruning::Proxy, 0), train::HybridObjective{}),
                       doctest::Contains("no scheme with a finite loss"), progdiff::ConfigError);
}

TEST_CASE("Taylor pruning of a learned-variance net: gradients of the prediction head, 2C outputs kept") {
  const CosineSchedule s;
  const auto train_split = tdc_test::patterns(32, 0.0, true);
  auto base = tdc_test::base_model<HybridNet, CosineSchedule>();
  const Shape image{1, 1, 8, 8};
  auto r = tdc::run_tdc(base, tdc_test::three_groups<CosineSchedule>(), s, train_split,
                        options(scratch("taylor"), tdc::TdcPruning::Taylor, 0), train::HybridObjective{});
  REQUIRE(r.model.has_value());
  const auto partition = tdc_test::three_groups<CosineSchedule>();
  for (std::int64_t g = 0; g < 2; ++g) {
    CHECK(static_cast<double>(r.model->denoiser(g).flops(image)) <=
          partition.budgets[static_cast<std::size_t>(g)] * static_cast<double>(base.denoiser(0).flops(image)) *
              (1 + 1e-9));
    CHECK(std::isfinite(r.report.groups[static_cast<std::size_t>(g)].pruned_loss));
  }
  const Tensor x = Tensor::from_host(Shape{1, 1, 8, 8}, std::vector<float>(kImageValues, -0.5f));
  CHECK(r.model->denoiser(0)
            .forward(x, progdiff::model::timestep_tensor<float, Cpu>(std::vector<std::int64_t>{1}))
            .shape() == Shape{1, 2, 8, 8});
}

TEST_CASE("run_tdc_over_ranks fine-tunes every group with the objective it is given") {
  const CosineSchedule s;
  const auto train_split = tdc_test::patterns(32, 0.0, true);
  const auto [fit, validation] = data::split_validation(train_split, 8);
  const auto partition = tdc_test::three_groups<CosineSchedule>();
  auto base = tdc_test::base_model<HybridNet, CosineSchedule>();
  progdiff::distributed::SingleProcess one;
  RecordingHybrid objective;
  constexpr std::int64_t kSteps = 1;
  auto r = tdc::run_tdc_over_ranks(one, base, partition, s, fit, validation,
                                   options(scratch("over_ranks"), tdc::TdcPruning::Magnitude, kSteps), {},
                                   tdc::TdcFanOut::Groups, objective);
  REQUIRE(r.model.has_value());
  const auto& calls = *objective.calls;
  REQUIRE(calls.size() == static_cast<std::size_t>(3 * kSteps));
  for (std::size_t g = 0; g < calls.size(); ++g) {
    CHECK(calls[g].output_shape == Shape{4, 2, 8, 8});
    for (std::int64_t t : calls[g].timesteps) {
      CHECK(t >= partition.begin(static_cast<std::int64_t>(g)));
      CHECK(t < partition.end(static_cast<std::int64_t>(g)));
    }
  }
}

}  // namespace progdiff_tests_tdc_hybrid

// Every extension point of the papers' pipeline, extended from outside the library: a noise
// schedule, a grouper, a sampler, an importance criterion and a pruning proxy, each written here
// in a namespace of the test's own against the concept it satisfies and used by the library's
// pipelines with no edit to the library (no enum value, no name table, no registration).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/data/validation_split.hpp"
#include "progdiff/group/grouper.hpp"
#include "progdiff/prune/proxy.hpp"
#include "progdiff/sample/stepper.hpp"
#include "progdiff/schedule/noise_schedule.hpp"
#include "progdiff/tdc/validation.hpp"
#include "tdc_support.hpp"
#include "train_support.hpp"

namespace progdiff_tests_extension_points {

namespace user {

namespace pd = progdiff;

// A variance-preserving schedule on 60 points with alpha_bar(t) = cos^2(0.45 pi t), t = (i + 1) / 60.
struct CosineSquared {
  static constexpr std::int64_t steps = 60;
  std::int64_t size() const { return steps; }
  double time(std::int64_t i) const { return static_cast<double>(i + 1) / steps; }
  double alpha_bar(std::int64_t i) const {
    const double c = std::cos(0.45 * std::numbers::pi * time(i));
    return c * c;
  }
  double scale(std::int64_t i) const { return std::sqrt(alpha_bar(i)); }
  double sigma(std::int64_t i) const { return std::sqrt((1.0 - alpha_bar(i)) / alpha_bar(i)); }
};

// Three equal groups of the grid with FLOPs budgets 0.6, 0.8 and 1 of the base.
struct EqualThirds {
  template <class S>
  pd::group::Partition group(const S& s) const {
    const std::int64_t n = s.size();
    return pd::group::Partition{{0, n / 3, 2 * n / 3, n}, {0.6, 0.8, 1.0}};
  }
};

// One model evaluation at the last grid point: x0 = (x - sqrt(1 - abar) eps) / sqrt(abar).
struct OneStepX0 {
  double alpha_bar = 1.0, timestep = 0.0;
  std::int64_t evaluations() const { return 1; }
  int history_size() const { return 0; }
  double initial_scale() const { return 1.0; }
  pd::sample::ModelCall model_call(std::int64_t) const { return {1.0, timestep}; }
  pd::sample::StepWeights weights(std::int64_t, pd::sample::PredictionType) const {
    pd::sample::StepWeights w;
    w.x[pd::sample::kSampleTerm] = 1.0 / std::sqrt(alpha_bar);
    w.x[pd::sample::kOutputTerm] = -std::sqrt(1.0 - alpha_bar) / std::sqrt(alpha_bar);
    return w;
  }
};

// A denoiser whose epsilon prediction is `factor` times its input.
struct ScaledInput {
  float factor = 0.0f;
  pd::Tensor<float> predict(const pd::Tensor<float>& x, std::span<const std::int64_t>) {
    auto h = x.to_host();
    for (auto& v : h) v *= factor;
    return pd::Tensor<float>::from_host(x.shape(), h);
  }
  pd::sample::PredictionType prediction_type() const { return pd::sample::PredictionType::Epsilon; }
};

// Keeps the channels of lowest index: its scores are a closed form, so the kept rows are known.
template <class Net>
struct LowIndexFirst {
  pd::prune::ChannelScores scores(pd::tdc::ImportanceProbe<Net>& probe) {
    pd::prune::ChannelScores s;
    for (const auto& g : probe.groups.groups) {
      std::vector<double> v;
      for (std::int64_t j = 0; j < g.width; ++j) v.push_back(static_cast<double>(g.width - j));
      s.push_back(std::move(v));
    }
    return s;
  }
};

// Proposes the narrowest scheme the search space allows, and records it.
struct Narrowest {
  std::vector<std::vector<std::int64_t>>* proposed = nullptr;
  std::vector<std::string>* names = nullptr;
  std::vector<pd::prune::Scheme> propose(const pd::prune::ProxyRequest& request) {
    pd::prune::Scheme s;
    names->clear();
    for (const auto& layer : request.space.layers) {
      s.widths.push_back(layer.min_width);
      names->push_back(layer.name);
    }
    proposed->push_back(s.widths);
    return {s};
  }
};

}  // namespace user

namespace {

namespace pd = progdiff;
namespace train = progdiff::train;
namespace tdc = progdiff::tdc;
using tdc_test::Net;

static_assert(pd::schedule::NoiseSchedule<user::CosineSquared>);
static_assert(pd::group::Grouper<user::EqualThirds, user::CosineSquared>);
static_assert(pd::sample::Sampler<user::OneStepX0>);
static_assert(pd::sample::Denoiser<user::ScaledInput, float, pd::backend::Cpu>);
static_assert(tdc::ImportanceCriterion<user::LowIndexFirst<Net>, Net>);
static_assert(pd::prune::PruningProxy<user::Narrowest>);

const train_test::ScratchDir scratch("progdiff_extension_points_test");

tdc::TdcOptions tiny_options(const std::filesystem::path& dir, tdc::TdcPruning pruning) {
  tdc::TdcOptions o;
  o.out_dir = dir;
  o.pruning = pruning;
  o.seed = 1;
  o.proxy_rounds = 1;
  o.proxy_candidates = 1;
  o.eval_samples = 4;
  o.eval_batch_size = 4;
  o.validation_images = 8;
  o.importance_batches = 1;
  o.importance_batch_size = 4;
  o.finetune.steps = 0;
  o.finetune.batch_size = 4;
  o.finetune.progress.mode = train::ProgressOptions::Mode::Off;
  return o;
}

// The values of parameter `name` of `net`.
std::vector<float> parameter(Net& net, const std::string& name) {
  std::vector<float> out;
  net.visit_parameters(
      [&](const std::string& n, auto& p) {
        if (n == name) out = p.value.to_host();
      },
      std::string());
  REQUIRE(!out.empty());
  return out;
}

}  // namespace

TEST_CASE("a schedule and a grouper of one's own partition the grid where they say") {
  const user::CosineSquared schedule;
  const auto partition = pd::group::make_partition(user::EqualThirds{}, schedule);
  CHECK(partition.starts == std::vector<std::int64_t>{0, 20, 40, 60});
  // boundary times in the schedule's own t: (20 + 1) / 60 and (40 + 1) / 60
  const auto t = pd::group::boundary_times(partition, schedule);
  REQUIRE(t.size() == 2);
  CHECK(t[0] == doctest::Approx(21.0 / 60.0));
  CHECK(t[1] == doctest::Approx(41.0 / 60.0));
}

TEST_CASE("a sampler of one's own runs through the library's stepper with its closed-form update") {
  const user::CosineSquared schedule;
  const std::int64_t last = schedule.size() - 1;
  const user::OneStepX0 sampler{schedule.alpha_bar(last), static_cast<double>(last)};
  const pd::Shape shape{3, 1, 4, 4};
  const auto start = pd::sample::start(sampler, shape, 7).x.to_host();  // x_T: the Philox noise
  user::ScaledInput zero{0.0f}, half{0.5f};
  const auto x0_zero = pd::sample::generate(sampler, zero, shape, 7).to_host();
  const auto x0_half = pd::sample::generate(sampler, half, shape, 7).to_host();
  // eps = a x_T gives x0 = x_T (1 - a sqrt(1 - abar)) / sqrt(abar)
  const double ab = schedule.alpha_bar(last);
  REQUIRE(x0_zero.size() == start.size());
  for (std::size_t i = 0; i < start.size(); ++i) {
    CHECK(x0_zero[i] == doctest::Approx(start[i] / std::sqrt(ab)).epsilon(1e-5));
    CHECK(x0_half[i] == doctest::Approx(start[i] * (1.0 - 0.5 * std::sqrt(1.0 - ab)) / std::sqrt(ab)).epsilon(1e-5));
  }
}

TEST_CASE("an importance criterion and a proxy of one's own prune the groups of that grouper in run_tdc") {
  const user::CosineSquared schedule;
  const auto partition = pd::group::make_partition(user::EqualThirds{}, schedule);
  const auto data = tdc_test::patterns(24, 0.0);
  const pd::Shape image{1, 1, 8, 8};

  SUBCASE("criterion: the kept channels are the lowest-index ones, within the group's budget") {
    auto base = tdc_test::base_model();
    const auto split = pd::data::split_validation(data, 8);
    auto r = tdc::run_tdc(base, partition, schedule, split.fit, split.validation,
                          tiny_options(scratch("criterion"), tdc::TdcPruning::Magnitude),
                          tdc::AnyImportance<Net>("low-index-first", user::LowIndexFirst<Net>{}));
    REQUIRE(r.model.has_value());
    Net& pruned = r.model->denoiser(0);
    CHECK(pruned.flops(image) <= 0.6 * static_cast<double>(base.denoiser(0).flops(image)));
    // conv_in's output rows kept are, in each of its 4 GroupNorm segments (each segment loses
    // the same number of channels), the lowest-index ones of the base, unchanged (no fine-tuning)
    const std::int64_t width = base.denoiser(0).widths().at("conv_in"), kept = pruned.widths().at("conv_in");
    const std::int64_t segments = 4, per_segment = width / segments, kept_per_segment = kept / segments;
    const auto before = parameter(base.denoiser(0), "conv_in.weight");
    const auto after = parameter(pruned, "conv_in.weight");
    REQUIRE(kept < width);
    REQUIRE(after.size() == static_cast<std::size_t>(kept) * 9);  // [kept, 1, 3, 3]
    std::vector<float> expected;
    for (std::int64_t seg = 0; seg < segments; ++seg)
      for (std::int64_t j = 0; j < kept_per_segment; ++j) {
        const auto row = before.begin() + (seg * per_segment + j) * 9;
        expected.insert(expected.end(), row, row + 9);
      }
    CHECK(expected == after);
    // the group with budget 1 keeps every channel
    CHECK(r.model->denoiser(2).widths() == base.denoiser(0).widths());
  }

  SUBCASE("proxy: its scheme is the one evaluated and assembled") {
    std::vector<std::vector<std::int64_t>> proposed;
    std::vector<std::string> names;
    auto o = tiny_options(scratch("proxy"), tdc::TdcPruning::Proxy);
    o.proxy_name = "narrowest";
    o.make_proxy = [&](std::int64_t, std::uint64_t) -> pd::prune::AnyPruningProxy {
      return user::Narrowest{&proposed, &names};
    };
    auto base = tdc_test::base_model();
    auto r = tdc::run_tdc(base, partition, schedule, data, o);
    REQUIRE(r.model.has_value());
    REQUIRE(proposed.size() == 2);  // groups 0 and 1; group 2 has budget 1: nothing to search
    const auto& widths = r.model->denoiser(1).widths();
    REQUIRE(names.size() == proposed[1].size());
    for (std::size_t i = 0; i < names.size(); ++i) CHECK(widths.at(names[i]) == proposed[1][i]);
    std::ifstream in(o.out_dir / "tdc.json");
    CHECK(nlohmann::json::parse(in)["proxy"] == "narrowest");
  }
}

}  // namespace progdiff_tests_extension_points

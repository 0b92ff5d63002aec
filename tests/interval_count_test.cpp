// Decoder and expert counts given at run time (unet/interval_count.hpp): a model of
// Decoders<kRunTimeCount> or SeparateExperts<Net, kRunTimeCount> built from K width tables is
// checked against the type that fixes K, built from the same widths and seed: the same outputs,
// gradients, parameter and dropout names, FLOPs, description and checkpoint tensors, and each
// loads the other's checkpoints. Counts of zero and inconsistent widths are refused naming the
// model.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "layer_support.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/from_description.hpp"
#include "progdiff/model/interval_routed.hpp"
#include "progdiff/prune/unet_channel_groups.hpp"
#include "progdiff/sample/denoiser.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/ema_weights.hpp"
#include "progdiff/unet/interval_count.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/separate_experts.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_interval_count {

namespace {

using namespace layer_test;
namespace unet = progdiff::unet;
namespace model = progdiff::model;
namespace train = progdiff::train;
namespace io = progdiff::io;
using progdiff::ConfigError;
using progdiff::Generator;
using progdiff::Shape;

// 8x8 gray images, base 8, attention at 4x4, dropout on: the dropout masks must be keyed alike too.
#define INTERVAL_COUNT_TEST_OPTIONS                                                                         \
  unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>, unet::ImageChannels<1>, \
      unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<20>, unet::ElementType<double>
template <int K>
using MultiOf = unet::MultiDecoderUNet<INTERVAL_COUNT_TEST_OPTIONS, unet::Decoders<K>>;
using RunTimeMulti = MultiOf<unet::kRunTimeCount>;
using Net = unet::UNet<INTERVAL_COUNT_TEST_OPTIONS>;
template <int K>
using ExpertsOf = unet::SeparateExperts<Net, K>;
using RunTimeExperts = ExpertsOf<unet::kRunTimeCount>;
using Schedule = progdiff::schedule::Linear<100>;

static_assert(unet::IntervalModel<RunTimeMulti> && unet::IntervalModel<RunTimeExperts>);
static_assert(progdiff::sample::Denoiser<model::IntervalRouted<RunTimeMulti>, double, Cpu>);
static_assert(progdiff::sample::Denoiser<model::IntervalRouted<RunTimeExperts>, double, Cpu>);
// A fixed count stays a constant of the type.
static_assert(MultiOf<3>::interval_count() == 3 && ExpertsOf<3>::interval_count() == 3);
static_assert(RunTimeMulti::count_at_run_time && !MultiOf<3>::count_at_run_time);

/// K intervals of the 100 timesteps, as equal as they come.
progdiff::group::Partition partition_of(int k) {
  progdiff::group::Partition p;
  for (int i = 0; i <= k; ++i) p.starts.push_back(100 * i / k);
  return p;
}

/// Decoder base widths 8, 4, 8, 4, ...: neighbours differ, so a decoder mixed up with another shows.
std::vector<std::int64_t> decoder_bases(int k) {
  std::vector<std::int64_t> b;
  for (int i = 0; i < k; ++i) b.push_back(i % 2 == 0 ? 8 : 4);
  return b;
}

/// Expert widths: the default table at base 8, 16, 8, ...
std::vector<unet::WidthTable> expert_widths(int k) {
  std::vector<unet::WidthTable> w;
  for (int i = 0; i < k; ++i) w.push_back(Net::default_widths(i % 2 == 0 ? 8 : 16));
  return w;
}

std::vector<double> host(const HostTensor<double>& t) { return t.to_host(); }

/// What a routed model computes and reports, for comparison across its two types.
struct Outcome {
  std::int64_t intervals = 0;
  std::vector<double> y, dx, prediction;
  std::vector<std::pair<std::string, std::vector<double>>> parameters, gradients;
  std::vector<std::string> dropout_layers;
  std::vector<std::int64_t> flops, parameters_per_interval;
  std::int64_t parameter_count = 0;
  double average_flops = 0.0;
  model::Description description;
  std::vector<std::string> channel_group_names;
  double channel_group_flops = 0.0;
};

/// Initializes `m` from a fixed seed, runs a training forward and backward on two images per
/// interval, then a prediction.
template <class M>
Outcome outcome_of(model::IntervalRouted<M>& m) {
  const std::int64_t k = m.group_count();
  Generator gen(41);
  m.initialize(gen);
  Generator data(7);
  const auto x = random_tensor<double>(Shape{2 * k, 1, 8, 8}, data);
  const auto w = random_tensor<double>(Shape{2 * k, 1, 8, 8}, data);
  std::vector<std::int64_t> t;
  for (std::int64_t g = 0; g < k; ++g) {
    t.push_back(m.partition().end(g) - 1);
    t.push_back(m.partition().begin(g));
  }
  Outcome o;
  o.intervals = m.inner().interval_count();
  progdiff::nn::zero_grad(m);
  m.set_training(true);
  m.set_sample_offset(3);
  o.y = host(m.forward(x, t));
  o.dx = host(m.backward(w));
  o.prediction = host(m.predict(x, t));
  m.visit_parameters(
      [&](const std::string& name, auto& p) {
        o.parameters.emplace_back(name, host(p.value));
        o.gradients.emplace_back(name, host(p.grad));
      },
      std::string());
  m.visit_random_state([&](const std::string& name, auto&) { o.dropout_layers.push_back(name); }, std::string());
  const Shape image{1, 1, 8, 8};
  for (std::int64_t g = 0; g < k; ++g) {
    o.flops.push_back(m.flops(image, g));
    o.parameters_per_interval.push_back(m.parameter_count(g));
  }
  o.parameter_count = m.parameter_count();
  o.average_flops = m.average_flops(image);
  o.description = m.describe();
  if constexpr (requires { progdiff::prune::channel_groups(m.inner()); }) {
    const auto groups = progdiff::prune::channel_groups(m.inner());
    for (const auto& g : groups.groups) o.channel_group_names.push_back(g.name);
    o.channel_group_flops = groups.flops();
  }
  return o;
}

/// Exact equality: both types run the same layers in the same order.
void check_same(const Outcome& fixed, const Outcome& run_time) {
  CHECK(run_time.intervals == fixed.intervals);
  CHECK(run_time.y == fixed.y);
  CHECK(run_time.dx == fixed.dx);
  CHECK(run_time.prediction == fixed.prediction);
  CHECK(run_time.parameters == fixed.parameters);
  CHECK(run_time.gradients == fixed.gradients);
  CHECK(run_time.dropout_layers == fixed.dropout_layers);
  CHECK(run_time.flops == fixed.flops);
  CHECK(run_time.parameters_per_interval == fixed.parameters_per_interval);
  CHECK(run_time.parameter_count == fixed.parameter_count);
  CHECK(run_time.average_flops == fixed.average_flops);
  CHECK(run_time.description == fixed.description);
  CHECK(run_time.channel_group_names == fixed.channel_group_names);
  CHECK(run_time.channel_group_flops == fixed.channel_group_flops);
}

/// The tensors and metadata of two checkpoint files, byte for byte.
void check_same_files(const std::filesystem::path& a, const std::filesystem::path& b) {
  const auto fa = progdiff::io::read_safetensors(a);
  const auto fb = progdiff::io::read_safetensors(b);
  CHECK(fa.metadata == fb.metadata);
  REQUIRE(fa.tensors.size() == fb.tensors.size());
  for (const auto& [name, record] : fa.tensors) {
    REQUIRE_MESSAGE(fb.contains(name), name);
    const auto& other = fb.at(name);
    CHECK_MESSAGE((record.dtype == other.dtype && record.shape == other.shape && record.bytes == other.bytes), name);
  }
}

std::filesystem::path temporary(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("progdiff_interval_count_" + name + ".safetensors");
}

template <class M>
void save(const std::filesystem::path& path, model::IntervalRouted<M>& m) {
  io::save_checkpoint(path, m, train::checkpoint_description(m, Schedule{}), io::TrainingState{});
}

/// Initializes `fixed` and `run_time` from generators of the same seed, saves each to its path
/// and checks that the two files are the same.
template <class Fixed, class RunTime>
void save_and_compare(model::IntervalRouted<Fixed>& fixed, model::IntervalRouted<RunTime>& run_time, std::uint64_t seed,
                      const std::filesystem::path& fixed_path, const std::filesystem::path& run_time_path) {
  Generator a(seed), b(seed);
  fixed.initialize(a);
  run_time.initialize(b);
  save(fixed_path, fixed);
  save(run_time_path, run_time);
  check_same_files(fixed_path, run_time_path);
}

}  // namespace

TEST_CASE_TEMPLATE("a run-time decoder count builds, trains and describes the model of Decoders<K>", K,
                   std::integral_constant<int, 1>, std::integral_constant<int, 2>, std::integral_constant<int, 3>,
                   std::integral_constant<int, 4>) {
  using Fixed = MultiOf<K::value>;
  const auto widths = Fixed::default_widths(8, decoder_bases(K::value));
  CHECK(RunTimeMulti::default_widths(8, decoder_bases(K::value)) == widths);
  model::IntervalRouted<Fixed> fixed(Fixed(widths, Fixed::default_config()), partition_of(K::value));
  model::IntervalRouted<RunTimeMulti> run_time(RunTimeMulti(widths, RunTimeMulti::default_config()),
                                               partition_of(K::value));
  CHECK(run_time.inner().widths() == widths);
  check_same(outcome_of(fixed), outcome_of(run_time));
}

TEST_CASE_TEMPLATE("a run-time expert count builds, trains and describes SeparateExperts<Net, K>", K,
                   std::integral_constant<int, 1>, std::integral_constant<int, 2>, std::integral_constant<int, 3>) {
  using Fixed = ExpertsOf<K::value>;
  const auto widths = expert_widths(K::value);
  model::IntervalRouted<Fixed> fixed(Fixed(widths, Net::default_config()), partition_of(K::value));
  model::IntervalRouted<RunTimeExperts> run_time(RunTimeExperts(widths, Net::default_config()), partition_of(K::value));
  CHECK(run_time.inner().widths() == widths);
  check_same(outcome_of(fixed), outcome_of(run_time));
  // K experts of the default widths, as the fixed type's default constructor builds.
  CHECK(RunTimeExperts(K::value).widths() == Fixed().widths());
}

TEST_CASE("checkpoints of a run-time decoder count and of Decoders<3> are the same file and load into each other") {
  using Fixed = MultiOf<3>;
  const auto widths = Fixed::default_widths(8, decoder_bases(3));
  const auto fixed_path = temporary("fixed"), run_time_path = temporary("run_time");
  model::IntervalRouted<Fixed> fixed(Fixed(widths, Fixed::default_config()), partition_of(3));
  model::IntervalRouted<RunTimeMulti> run_time(RunTimeMulti(widths, RunTimeMulti::default_config()), partition_of(3));
  save_and_compare(fixed, run_time, 5, fixed_path, run_time_path);

  Generator data(8);
  const auto x = random_tensor<double>(Shape{3, 1, 8, 8}, data);
  const std::vector<std::int64_t> t{5, 50, 95};  // one image in each interval
  const auto expected = host(fixed.predict(x, t));
  // Rebuilt from the description, with other initial weights, then loaded.
  const auto d = progdiff::io::read_safetensors(fixed_path).metadata;
  auto into_run_time = model::multi_decoder_from_description<RunTimeMulti>(d, fixed_path.string(), /*seed=*/9);
  CHECK(into_run_time.inner().interval_count() == 3);
  CHECK(into_run_time.inner().widths() == widths);
  CHECK_FALSE(train::load_ema_weights(fixed_path, into_run_time, Schedule{}));
  CHECK(host(into_run_time.predict(x, t)) == expected);
  auto into_fixed = model::multi_decoder_from_description<Fixed>(d, run_time_path.string(), /*seed=*/9);
  CHECK_FALSE(train::load_ema_weights(run_time_path, into_fixed, Schedule{}));
  CHECK(host(into_fixed.predict(x, t)) == expected);
  std::filesystem::remove(fixed_path);
  std::filesystem::remove(run_time_path);
}

TEST_CASE("checkpoints of a run-time expert count and of SeparateExperts<Net, 2> load into each other") {
  using Fixed = ExpertsOf<2>;
  const auto widths = expert_widths(2);
  const auto fixed_path = temporary("experts_fixed"), run_time_path = temporary("experts_run_time");
  model::IntervalRouted<Fixed> fixed(Fixed(widths, Net::default_config()), partition_of(2));
  model::IntervalRouted<RunTimeExperts> run_time(RunTimeExperts(widths, Net::default_config()), partition_of(2));
  save_and_compare(fixed, run_time, 6, fixed_path, run_time_path);

  Generator data(9);
  const auto x = random_tensor<double>(Shape{2, 1, 8, 8}, data);
  const std::vector<std::int64_t> t{10, 90};
  const auto expected = host(fixed.predict(x, t));
  model::IntervalRouted<RunTimeExperts> into_run_time(RunTimeExperts(widths, Net::default_config()), partition_of(2));
  model::IntervalRouted<Fixed> into_fixed(Fixed(widths, Net::default_config()), partition_of(2));
  Generator other(10);
  into_run_time.initialize(other);
  into_fixed.initialize(other);
  io::load_checkpoint(fixed_path, into_run_time, train::checkpoint_description(into_run_time, Schedule{}));
  io::load_checkpoint(run_time_path, into_fixed, train::checkpoint_description(into_fixed, Schedule{}));
  CHECK(host(into_run_time.predict(x, t)) == expected);
  CHECK(host(into_fixed.predict(x, t)) == expected);
  std::filesystem::remove(fixed_path);
  std::filesystem::remove(run_time_path);
}

TEST_CASE("a run-time count of zero or inconsistent widths is refused naming the model") {
  check_throws_naming<ConfigError>([] { RunTimeMulti::default_widths(8, {}); },
                                   {"Decoders<kRunTimeCount>", "default_widths", "no decoder widths"});
  auto widths = RunTimeMulti::default_widths(8, {8, 4});
  auto none = widths;
  none.decoders.clear();
  none.decoder_groups.clear();
  check_throws_naming<ConfigError>([&] { RunTimeMulti bad(none, RunTimeMulti::default_config()); },
                                   {"MultiDecoderUNet<..., Decoders<kRunTimeCount>>", "0 tables", "0 group counts"});
  auto fewer_groups = widths;
  fewer_groups.decoder_groups.pop_back();
  check_throws_naming<ConfigError>([&] { RunTimeMulti bad(fewer_groups, RunTimeMulti::default_config()); },
                                   {"Decoders<kRunTimeCount>", "2 tables", "1 group counts"});

  check_throws_naming<ConfigError>([] { RunTimeExperts bad(std::vector<unet::WidthTable>{}, Net::default_config()); },
                                   {"SeparateExperts<Net, kRunTimeCount>", "no width tables"});
  check_throws_naming<ConfigError>([] { RunTimeExperts bad(0); }, {"SeparateExperts<Net, kRunTimeCount>", "got 0"});
  check_throws_naming<ConfigError>([] { RunTimeExperts bad(-2); }, {"SeparateExperts<Net, kRunTimeCount>", "got -2"});

  // The count, once built, is checked as a fixed one: against the partition and each sample's interval.
  RunTimeMulti two(widths, RunTimeMulti::default_config());
  check_throws_naming<ConfigError>([&] { model::IntervalRouted<RunTimeMulti> bad(two, partition_of(3)); },
                                   {"3 groups", "2 intervals"});
  Generator gen(1);
  const auto x = random_tensor<double>(Shape{2, 1, 8, 8}, gen);
  const auto t = Net::timestep_tensor(std::vector<double>{1, 2});
  check_throws_naming<ConfigError>(
      [&] {
        two.forward(x, t, std::vector<std::int64_t>{0, 2});
      },
      {"sample 1", "interval 2", "[0, 2)"});
  RunTimeExperts experts(expert_widths(2), Net::default_config());
  check_throws_naming<ConfigError>(
      [&] {
        experts.forward(x, t, std::vector<std::int64_t>{2, 0});
      },
      {"sample 0", "interval 2", "[0, 2)"});

  // A checkpoint's description with no decoders.
  model::IntervalRouted<RunTimeMulti> routed(two, partition_of(2));
  auto d = train::checkpoint_description(routed, Schedule{});
  d["model.groups"] = "0";
  check_throws_naming<ConfigError>([&] { model::multi_decoder_from_description<RunTimeMulti>(d, "ckpt"); },
                                   {"ckpt", "'model.groups' is 0"});
}

}  // namespace progdiff_tests_interval_count
#undef INTERVAL_COUNT_TEST_OPTIONS

// Rebuilding models from their checkpoints' descriptions (model/from_description.hpp) and loading
// the EMA weights (train/ema_weights.hpp): a shared-encoder model with non-default decoder widths,
// GroupNorm groups, configuration and boundaries, saved with an EMA that differs from its raw
// weights, comes back with the EMA's outputs exactly; malformed descriptions are refused naming
// the key.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/from_description.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/ema_weights.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"

namespace progdiff_tests_from_description {

namespace {

namespace unet = progdiff::unet;
namespace model = progdiff::model;
namespace train = progdiff::train;
namespace optim = progdiff::optim;
namespace io = progdiff::io;
using progdiff::Generator;
using progdiff::Shape;
using Cpu = progdiff::backend::Cpu;
using Tensor = progdiff::Tensor<double, Cpu>;

template <int K>
using MultiOf = unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                                       unet::ImageChannels<1>, unet::BaseChannels<8>, unet::GroupNormGroups<4>,
                                       unet::DropoutPercent<0>, unet::ElementType<double>, unet::Decoders<K>>;
using Multi = MultiOf<2>;
using Schedule = progdiff::schedule::Linear<100>;

Tensor random_images(std::uint64_t seed) {
  Generator g(seed);
  std::vector<double> v(2 * 8 * 8);
  for (double& x : v) x = g.normal();
  return Tensor::from_host(Shape{2, 1, 8, 8}, v);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

/// A model unlike the defaults in everything the description records.
model::IntervalRouted<Multi> unusual_model() {
  unet::UNetConfig config = Multi::default_config();
  config.time_shift = 0.5;
  config.max_period = 5000;
  unet::MultiDecoderWidths w = Multi::default_widths(8, {16, 8});
  w.decoder_groups = {8, 2};
  model::IntervalRouted<Multi> m(Multi(w, config), {{0, 37, 100}, {}});
  Generator gen(3);
  m.initialize(gen);
  return m;
}

}  // namespace

TEST_CASE("a shared-encoder model rebuilt from its checkpoint samples with the checkpoint's EMA weights") {
  const Schedule schedule;
  const auto path = std::filesystem::temp_directory_path() / "progdiff_from_description_test.safetensors";
  auto saved = unusual_model();
  optim::Ema<double, Cpu> ema;
  ema.initialize(saved);  // the average holds these weights ...
  Generator other(99);
  saved.initialize(other);  // ... and the raw weights are different ones
  io::save_checkpoint(path, saved, train::checkpoint_description(saved, schedule), io::TrainingState{},
                      static_cast<const optim::AdamW<double, Cpu>*>(nullptr), &ema);

  const Tensor x = random_images(5);
  const std::vector<std::int64_t> t{10, 80};  // one image in each interval
  const auto raw = saved.predict(x, t).to_host();
  ema.copy_to(saved);
  const auto averaged = saved.predict(x, t).to_host();
  REQUIRE(max_abs_diff(raw, averaged) > 1e-3);  // the two sets of weights are told apart

  const auto d = progdiff::io::read_safetensors(path).metadata;
  auto rebuilt = model::multi_decoder_from_description<Multi>(d, path.string(), /*seed=*/7);
  CHECK(rebuilt.partition().starts == std::vector<std::int64_t>{0, 37, 100});
  CHECK(rebuilt.inner().widths().decoder_groups == std::vector<std::int64_t>{8, 2});
  CHECK(rebuilt.inner().config().time_shift == 0.5);
  CHECK(train::load_ema_weights(path, rebuilt, schedule));
  CHECK(max_abs_diff(rebuilt.predict(x, t).to_host(), averaged) == 0.0);
  std::filesystem::remove(path);
}

TEST_CASE("a description of another model, or a malformed one, is refused naming the key") {
  const Schedule schedule;
  const auto d = train::checkpoint_description(unusual_model(), schedule);
  const std::string src = "ckpt.safetensors";
  CHECK_THROWS_WITH_AS(model::multi_decoder_from_description<MultiOf<3>>(d, src),
                       doctest::Contains("2 decoders, this type 3"), progdiff::ConfigError);

  auto missing = d;
  missing.erase("decoder1.groupnorm_groups");
  CHECK_THROWS_WITH_AS(model::multi_decoder_from_description<Multi>(missing, src),
                       doctest::Contains("ckpt.safetensors: the checkpoint's description has no key "
                                         "'decoder1.groupnorm_groups'"),
                       progdiff::ConfigError);

  auto bad_boundaries = d;
  bad_boundaries["model.boundaries"] = "0,x7,100";
  CHECK_THROWS_WITH_AS(model::partition_from_description(bad_boundaries, src),
                       doctest::Contains("'model.boundaries' is '0,x7,100'"), progdiff::ConfigError);
  bad_boundaries["model.boundaries"] = "0,,100";
  CHECK_THROWS_AS(model::partition_from_description(bad_boundaries, src), progdiff::ConfigError);

  auto bad_number = d;
  bad_number["config.groups"] = "4x";
  CHECK_THROWS_WITH_AS(model::config_from_description(bad_number, "", src),
                       doctest::Contains("'config.groups' is '4x', not a number"), progdiff::ConfigError);

  auto other_kind = d;
  other_kind["model.kind"] = "progressive";
  CHECK_THROWS_WITH_AS(model::multi_decoder_from_description<Multi>(other_kind, src),
                       doctest::Contains("a 'progressive' model"), progdiff::ConfigError);

  auto prediction = d;
  prediction["model.prediction"] = "score";
  CHECK_THROWS_WITH_AS(model::prediction_from_description(prediction, src),
                       doctest::Contains("'model.prediction' is 'score'"), progdiff::ConfigError);
}

TEST_CASE("a checkpoint of another schedule is refused by load_ema_weights, leaving the model unchanged") {
  const auto path = std::filesystem::temp_directory_path() / "progdiff_from_description_schedule.safetensors";
  auto saved = unusual_model();
  io::save_checkpoint(path, saved, train::checkpoint_description(saved, progdiff::schedule::Linear<100>{}),
                      io::TrainingState{});
  auto target = unusual_model();
  Generator other(11);
  target.initialize(other);
  const Tensor x = random_images(6);
  const std::vector<std::int64_t> t{5, 50};
  const auto before = target.predict(x, t).to_host();
  CHECK_THROWS_WITH_AS(train::load_ema_weights(path, target, progdiff::schedule::Linear<200>{}),
                       doctest::Contains("schedule.size"), progdiff::ConfigError);
  CHECK(max_abs_diff(target.predict(x, t).to_host(), before) == 0.0);
  // Without an EMA in the checkpoint the raw weights are loaded and the answer says so.
  CHECK_FALSE(train::load_ema_weights(path, target, progdiff::schedule::Linear<100>{}));
  CHECK(max_abs_diff(target.predict(x, t).to_host(), saved.predict(x, t).to_host()) == 0.0);
  std::filesystem::remove(path);
}

}  // namespace progdiff_tests_from_description

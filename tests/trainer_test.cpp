// Trainers: a complete stage-1 step against PyTorch, bit-exact resume from a checkpoint, the
// finite guard, stage 2 copies and per-group timesteps, multi-stage routing, and the progress
// bar, CSV log and loss plot.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/line_plot.hpp"
#include "progdiff/io/png_decode.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/model.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/multi_stage.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace {

namespace unet = progdiff::unet;
namespace model = progdiff::model;
namespace train = progdiff::train;
namespace fs = std::filesystem;
using progdiff::Generator;
using progdiff::Shape;
using Cpu = progdiff::backend::Cpu;

using Net =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<0>, unet::ElementType<double>>;
using Multi = unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                                     unet::ImageChannels<1>, unet::BaseChannels<8>, unet::GroupNormGroups<4>,
                                     unet::DropoutPercent<0>, unet::ElementType<double>, unet::Decoders<2>>;
using Schedule = progdiff::schedule::Linear<100>;

// Smooth 8x8 patterns in [-1, 1], one per image.
progdiff::data::ImageDataset patterns(std::int64_t count) {
  progdiff::data::ImageDataset d;
  d.count = count, d.channels = 1, d.height = 8, d.width = 8;
  for (std::int64_t i = 0; i < count; ++i) {
    d.labels.push_back(i % 3);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x)
        d.pixels.push_back(static_cast<float>(std::sin(0.7 * x + 0.3 * static_cast<double>(i)) * std::cos(0.5 * y)));
  }
  return d;
}

model::Progressive<Net> base_model(std::uint64_t seed) {
  Generator gen(seed);
  Net net;
  net.initialize(gen);
  return model::Progressive<Net>(std::move(net), Schedule::steps);
}

train::TrainOptions quiet_options(std::int64_t steps) {
  train::TrainOptions o;
  o.steps = steps;
  o.batch_size = 4;
  o.seed = 17;
  o.lr.lr = 1e-3;
  o.ema.decay = 0.9;
  o.progress.mode = train::ProgressOptions::Mode::Off;
  return o;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / "progdiff_trainer_test";
  fs::create_directories(dir);
  const fs::path p = dir / name;
  fs::remove(p);
  return p;
}

std::string file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

template <class M>
std::vector<double> all_weights(M& m) {
  std::vector<double> w;
  m.visit_parameters(
      [&](const std::string&, auto& p) {
        for (double v : p.value.to_host()) w.push_back(v);
      },
      std::string());
  return w;
}

struct Killed {};

progdiff::io::SafetensorsFile read_fixture(const std::string& name) {
  return progdiff::io::read_safetensors(std::string(PROGDIFF_FIXTURES_DIR) + "/train/" + name + ".safetensors");
}

}  // namespace

TEST_CASE("three stage-1 steps match PyTorch: batches, timesteps, noise, loss, clip, AdamW with warm-up, EMA") {
  const auto f = read_fixture("stage1_steps");
  progdiff::data::ImageDataset data;
  data.count = 6, data.channels = 1, data.height = 8, data.width = 8;
  data.pixels = f.values<float>("data");
  data.labels.assign(6, 0);
  Net net;  // every weight comes from the fixture
  model::Progressive<Net> m(std::move(net), Schedule::steps);
  m.visit_parameters(
      [&](const std::string& name, auto& p) {
        p.value.copy_from(progdiff::Tensor<double, Cpu>::from_host(p.value.shape(), f.values<double>("init." + name)));
      },
      std::string());
  train::TrainOptions o = quiet_options(3);
  o.lr.lr = 1e-3;
  o.lr.warmup_steps = 2;
  o.clip_norm = 1.0;
  o.ema.decay = 0.9;
  o.adamw.weight_decay = 0.01;
  const Schedule schedule;
  train::Trainer<model::Progressive<Net>, Schedule> trainer(m, schedule, data, o, train::BatchMode::PerGroup);
  const auto report = trainer.run();
  const auto expected = f.values<double>("loss");
  REQUIRE(report.steps.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("step " << i + 1 << ": " << std::abs(report.steps[i].loss - expected[i]));
    // the double U-Net forward agrees with torch float64 to ~1e-7 (not to rounding): see docs/training.md
    CHECK(report.steps[i].loss == doctest::Approx(expected[i]).epsilon(1e-7));
  }
  double worst = 0, worst_ema = 0;
  int count = 0;
  m.visit_parameters(
      [&](const std::string& name, auto& p) {
        const auto got = p.value.to_host();
        const auto want = f.values<double>("final." + name);
        const auto ema = trainer.ema().shadow().at(name).to_host();
        const auto want_ema = f.values<double>("ema." + name);
        for (std::size_t i = 0; i < got.size(); ++i) {
          worst = std::max(worst, std::abs(got[i] - want[i]));
          worst_ema = std::max(worst_ema, std::abs(ema[i] - want_ema[i]));
        }
        ++count;
      },
      std::string());
  CHECK(count == static_cast<int>(std::count_if(f.tensors.begin(), f.tensors.end(),
                                                [](const auto& t) { return t.first.rfind("final.", 0) == 0; })));
  INFO("weights " << worst << ", EMA " << worst_ema);
  CHECK(worst < 1e-6);  // the fixture's float32 rounding of float64 weights of magnitude < 1
  CHECK(worst_ema < 1e-6);
}

TEST_CASE("resume: a run killed after a checkpoint continues bit for bit like an uninterrupted one") {
  const auto data = patterns(12);
  const Schedule schedule;
  auto uninterrupted_model = base_model(1);
  const auto full = train::train_stage1(uninterrupted_model, schedule, data, quiet_options(6));
  REQUIRE(full.steps.size() == 6);

  train::TrainOptions o = quiet_options(6);
  o.checkpoint_every = 2;
  o.checkpoint_path = scratch("resume.safetensors");
  auto killed_model = base_model(1);
  CHECK_THROWS_AS(train::train_stage1(killed_model, schedule, data, o,
                                      [](const train::StepInfo& s) {
                                        if (s.step == 3) throw Killed{};
                                      }),
                  Killed);
  auto resumed_model = base_model(99);  // other initial weights: the checkpoint replaces them
  const auto resumed = train::train_stage1(resumed_model, schedule, data, o);
  CHECK(resumed.first_step == 2);
  REQUIRE(resumed.steps.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(resumed.steps[i].step == full.steps[i + 2].step);
    CHECK(resumed.steps[i].loss == full.steps[i + 2].loss);  // bit for bit
  }
  CHECK(all_weights(resumed_model) == all_weights(uninterrupted_model));
}

TEST_CASE("finite guard: a NaN stops training naming step and group; the last checkpoint stays intact") {
  const auto data = patterns(12);
  const Schedule schedule;
  train::TrainOptions o = quiet_options(6);
  o.checkpoint_every = 2;
  o.checkpoint_path = scratch("nan.safetensors");
  auto m = base_model(2);
  std::string saved;
  try {
    train::train_stage1(m, schedule, data, o, [&](const train::StepInfo& s) {
      if (s.step != 2) return;
      REQUIRE(s.checkpointed);
      saved = file_bytes(o.checkpoint_path);
      m.visit_parameters(
          [](const std::string& name, auto& p) {
            if (name == "group0.conv_in.weight") p.value.fill(std::nan(""));
          },
          std::string());
    });
    FAIL("training went on after a NaN");
  } catch (const train::NonFiniteError& e) {
    CHECK(std::string(e.what()).find("training step 3 of group '0'") != std::string::npos);
  }
  REQUIRE(!saved.empty());
  CHECK(file_bytes(o.checkpoint_path) == saved);
}

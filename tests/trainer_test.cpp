// Trainers: a complete stage-1 step against PyTorch, bit-exact resume from a checkpoint, the
// finite guard, stage 2 copies and per-group timesteps, multi-stage routing, and the progress
// bar, CSV log and loss plot.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/line_plot.hpp"
#include "progdiff/io/png_decode.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/model.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/sample/stepper.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/multi_stage.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/separate_experts.hpp"
#include "progdiff/unet/unet.hpp"
#include "train_support.hpp"

namespace progdiff_tests_trainer {

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
// The same net with DDPM's 10% dropout: its masks must survive a resume too.
using DropNet =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<10>, unet::ElementType<double>>;
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

template <class N = Net>
model::Progressive<N> base_model(std::uint64_t seed) {
  Generator gen(seed);
  N net;
  net.initialize(gen);
  return model::Progressive<N>(std::move(net), Schedule::steps);
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

const train_test::ScratchDir scratch("progdiff_trainer_test");

std::string file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

using train_test::all_weights;
using train_test::Killed;

}  // namespace

TEST_CASE("three stage-1 steps match PyTorch: batches, timesteps, noise, loss, clip, AdamW with warm-up, EMA") {
  const auto f = train_test::read_train_fixture("stage1_steps");
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
    // double against torch float64 on the same (float32-exact) weights and data: rounding only
    CHECK(report.steps[i].loss == doctest::Approx(expected[i]).epsilon(1e-12));
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

TEST_CASE_TEMPLATE("resume: a run killed after a checkpoint continues bit for bit like an uninterrupted one", N, Net,
                   DropNet) {
  const auto data = patterns(12);
  const Schedule schedule;
  auto uninterrupted_model = base_model<N>(1);
  const auto full = train::train_stage1(uninterrupted_model, schedule, data, quiet_options(6));
  REQUIRE(full.steps.size() == 6);

  train::TrainOptions o = quiet_options(6);
  o.checkpoint_every = 2;
  o.checkpoint_path = scratch("resume.safetensors");
  auto killed_model = base_model<N>(1);
  CHECK_THROWS_AS(train::train_stage1(killed_model, schedule, data, o,
                                      [](const train::StepInfo& s) {
                                        if (s.step == 3) throw Killed{};
                                      }),
                  Killed);
  // the checkpoint of step 2 holds each dropout layer's seed and mask count (none at 0%)
  const auto saved = progdiff::io::read_safetensors(o.checkpoint_path);
  const auto dropout_states = std::count_if(saved.tensors.begin(), saved.tensors.end(),
                                            [](const auto& t) { return t.first.rfind("rng.dropout.", 0) == 0; });
  CHECK(dropout_states == (N::spec::dropout_percent > 0 ? 8 : 0));  // 2 down, 2 mid, 4 up ResBlocks
  if (N::spec::dropout_percent > 0) {
    const auto v = saved.values<std::uint64_t>("rng.dropout.group0.down.0.res.0.dropout");
    CHECK(v[1] == 2);  // one training forward per step
  }
  // other initial weights and dropout seeds: the checkpoint replaces both
  auto resumed_model = base_model<N>(99);
  const auto resumed = train::train_stage1(resumed_model, schedule, data, o);
  CHECK(resumed.first_step == 2);
  REQUIRE(resumed.steps.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(resumed.steps[i].step == full.steps[i + 2].step);
    CHECK(resumed.steps[i].loss == full.steps[i + 2].loss);  // bit for bit
  }
  CHECK(all_weights<double>(resumed_model) == all_weights<double>(uninterrupted_model));
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

namespace {

// Records every draw of a uniform sampler, per group.
struct RecordingSampler {
  progdiff::train::UniformTimesteps inner;
  std::shared_ptr<std::vector<std::int64_t>> seen;
  progdiff::train::TimestepDraw draw(Generator& gen, std::int64_t count) {
    auto d = inner.draw(gen, count);
    seen->insert(seen->end(), d.timesteps.begin(), d.timesteps.end());
    return d;
  }
  std::pair<std::int64_t, std::int64_t> range() const { return inner.range(); }
};

// Draws timestep 0 whatever its group: a broken user sampler.
struct StraySampler {
  std::int64_t begin, end;
  progdiff::train::TimestepDraw draw(Generator&, std::int64_t count) {
    return {std::vector<std::int64_t>(static_cast<std::size_t>(count), 0),
            std::vector<double>(static_cast<std::size_t>(count), 1.0)};
  }
  std::pair<std::int64_t, std::int64_t> range() const { return {begin, end}; }
};

unet::WidthTable narrow_widths() {
  unet::WidthTable w = Net::default_widths();
  for (auto& l : w.layers)
    if (l.layer.rfind("down.0.res.", 0) == 0 || l.layer.rfind("up.0.res.", 0) == 0) l.channels = 4;
  return w;
}

}  // namespace

TEST_CASE(
    "stage 2: copies equal the base at copy time, the hook runs between copy and fine-tuning, "
    "each group trains on its own timesteps, and a resumed run skips the hook and continues exactly") {
  const auto data = patterns(12);
  const Schedule schedule;
  auto base = base_model(5);
  const progdiff::group::Partition partition{{0, 30, 100}, {}};
  const auto x = progdiff::Tensor<double, Cpu>::from_host(Shape{2, 1, 8, 8}, std::vector<double>(128, 0.3));
  const std::vector<std::int64_t> probe{10, 90};
  const auto base_out = base.predict(x, probe).to_host();

  int hook_calls = 0;
  const train::GroupHook<Net> hook = [&](std::int64_t k, Net& net) {
    ++hook_calls;
    const auto t = progdiff::Tensor<double, Cpu>::from_host(Shape{2}, std::vector<double>{10, 90});
    CHECK(net.forward(x, t).to_host() == base_out);  // an exact copy of the base
    net.backward(progdiff::Tensor<double, Cpu>::zeros(x.shape()));
    if (k == 1) {  // stands in for pruning: a narrower net of the same type
      Generator g(77);
      Net narrow(narrow_widths(), Net::default_config());
      narrow.initialize(g);
      net = std::move(narrow);
    }
  };
  std::vector<std::shared_ptr<std::vector<std::int64_t>>> seen{std::make_shared<std::vector<std::int64_t>>(),
                                                               std::make_shared<std::vector<std::int64_t>>()};
  train::TrainOptions o = quiet_options(4);
  o.make_sampler = [&](std::int64_t k, std::int64_t begin, std::int64_t end) {
    return train::AnyTimestepSampler(RecordingSampler{{begin, end}, seen[static_cast<std::size_t>(k)]});
  };
  train::TrainReport full;
  auto grouped = train::train_stage2(base, partition, schedule, data, o, hook, &full);
  CHECK(hook_calls == 2);
  CHECK(grouped.denoiser(1).widths() == narrow_widths());
  REQUIRE(full.steps.size() == 4);
  CHECK(full.steps[0].group_losses.size() == 2);
  CHECK(seen[0]->size() == 16);
  CHECK(seen[1]->size() == 16);
  for (auto t : *seen[0]) CHECK((t >= 0 && t < 30));
  for (auto t : *seen[1]) CHECK((t >= 30 && t < 100));
  CHECK(base.predict(x, probe).to_host() == base_out);  // the base is untouched

  train::TrainOptions k = o;
  k.checkpoint_every = 2;
  k.checkpoint_path = scratch("stage2.safetensors");
  hook_calls = 0;
  CHECK_THROWS_AS(train::train_stage2(base, partition, schedule, data, k, hook, nullptr,
                                      [](const train::StepInfo& s) {
                                        if (s.step == 3) throw Killed{};
                                      }),
                  Killed);
  CHECK(hook_calls == 2);
  train::TrainReport resumed;
  auto again = train::train_stage2(base, partition, schedule, data, k, hook, &resumed);
  CHECK(hook_calls == 2);  // widths came from the checkpoint
  CHECK(again.denoiser(1).widths() == narrow_widths());
  REQUIRE(resumed.steps.size() == 2);
  CHECK(resumed.steps[0].group_losses == full.steps[2].group_losses);
  CHECK(resumed.steps[1].group_losses == full.steps[3].group_losses);
  CHECK(all_weights<double>(again) == all_weights<double>(grouped));
}

TEST_CASE("a sampler drawing outside its group is refused, naming the group") {
  const auto data = patterns(8);
  const Schedule schedule;
  auto base = base_model(6);
  auto grouped = train::copy_into_groups(base, {{0, 50, 100}, {}}, 1);
  train::TrainOptions o = quiet_options(1);
  o.make_sampler = [](std::int64_t, std::int64_t begin, std::int64_t end) {
    return train::AnyTimestepSampler(StraySampler{begin, end});
  };
  train::Trainer<model::Progressive<Net>, Schedule> trainer(grouped, schedule, data, o, train::BatchMode::PerGroup);
  CHECK_THROWS_WITH_AS(trainer.run(),
                       doctest::Contains("sampler of group 1 drew timestep 0, outside the group's [50, 100)"),
                       progdiff::ConfigError);
}

TEST_CASE("multi-stage: mixed batches draw each group in proportion to its timesteps and train every decoder") {
  const auto data = patterns(16);
  const Schedule schedule;
  Generator gen(12);
  Multi net(Multi::default_widths(8, {8, 4}), Multi::default_config());
  net.initialize(gen);
  model::IntervalRouted<Multi> m(std::move(net), {{0, 60, 100}, {}});
  std::vector<double> encoder_before, decoder1_before;
  m.inner().encoder().visit_parameters(
      [&](const std::string&, auto& p) {
        for (double v : p.value.to_host()) encoder_before.push_back(v);
      },
      "");
  m.visit_group_parameters(
      1,
      [&](const std::string&, auto& p) {
        for (double v : p.value.to_host()) decoder1_before.push_back(v);
      },
      "");
  std::vector<std::shared_ptr<std::vector<std::int64_t>>> seen{std::make_shared<std::vector<std::int64_t>>(),
                                                               std::make_shared<std::vector<std::int64_t>>()};
  train::TrainOptions o = quiet_options(12);
  o.batch_size = 8;
  o.csv_path = scratch("multi.csv");
  o.make_sampler = [&](std::int64_t k, std::int64_t begin, std::int64_t end) {
    return train::AnyTimestepSampler(RecordingSampler{{begin, end}, seen[static_cast<std::size_t>(k)]});
  };
  const auto report = train::train_multi_stage(m, schedule, data, o);
  REQUIRE(report.steps.size() == 12);
  const double n0 = static_cast<double>(seen[0]->size()), n1 = static_cast<double>(seen[1]->size());
  CHECK(n0 + n1 == 96);
  CHECK(std::abs(n0 - 0.6 * 96) < 4 * std::sqrt(96 * 0.6 * 0.4));  // binomial(96, 0.6), 4 standard deviations
  for (auto t : *seen[1]) CHECK((t >= 60 && t < 100));
  std::vector<double> encoder_after, decoder1_after;
  m.inner().encoder().visit_parameters(
      [&](const std::string&, auto& p) {
        for (double v : p.value.to_host()) encoder_after.push_back(v);
      },
      "");
  m.visit_group_parameters(
      1,
      [&](const std::string&, auto& p) {
        for (double v : p.value.to_host()) decoder1_after.push_back(v);
      },
      "");
  CHECK(encoder_after != encoder_before);
  CHECK(decoder1_after != decoder1_before);
  const auto rows = train::CsvLog::read(o.csv_path, 1000);
  CHECK(std::count_if(rows.begin(), rows.end(), [](const auto& r) { return r.group == "all"; }) == 12);
  for (const auto& r : rows)
    if (r.group == "all") CHECK(r.loss == doctest::Approx(report.steps[static_cast<std::size_t>(r.step - 1)].loss));
}

TEST_CASE("progress line: counts, bar, per-group losses, rate and ETA; plain lines every N off a terminal") {
  CHECK(train::progress_line(5, 10, {{"g0", 0.5}, {"g1", 0.25}}, 2.0, 10) ==
        "step 5/10 [#####.....]  50.0% | loss g0 0.5 g1 0.25 | 2 steps/s | ETA 3s");
  CHECK(train::format_duration(3725) == "1h02m");
  CHECK(train::format_duration(61) == "1m01s");
  std::ostringstream lines;
  train::ProgressOptions p;
  p.mode = train::ProgressOptions::Mode::Lines;
  p.out = &lines;
  p.every = 2;
  train::ProgressBar bar(0, 5, p);
  for (int s = 1; s <= 5; ++s) bar.update(s, {{"", 1.0}});
  const std::string text = lines.str();
  CHECK(std::count(text.begin(), text.end(), '\n') == 3);  // steps 2, 4 and the last
  CHECK(text.find('\r') == std::string::npos);
  CHECK(text.find("step 4/5") != std::string::npos);
  CHECK(text.find("step 3/5") == std::string::npos);
  std::ostringstream tty;
  p.mode = train::ProgressOptions::Mode::Redraw;
  p.out = &tty;
  train::ProgressBar redraw(0, 3, p);
  for (int s = 1; s <= 3; ++s) redraw.update(s, {{"", 1.0}});
  const std::string drawn = tty.str();
  CHECK(std::count(drawn.begin(), drawn.end(), '\r') == 3);
  CHECK(drawn.back() == '\n');
}

namespace {
// An observer of the test's own: records what it is told, in order.
struct Recorder : train::TrainingObserver {
  std::vector<std::string> events;
  void begin(const train::RunStart& r) override {
    events.push_back("begin " + std::to_string(r.first_step) + "/" + std::to_string(r.steps));
  }
  void step(const train::StepInfo& s, double seconds) override {
    events.push_back("step " + std::to_string(s.step) + (s.checkpointed ? " saved" : ""));
    CHECK(seconds >= 0.0);
  }
  void interrupted() override { events.push_back("interrupted"); }
  void end() override { events.push_back("end"); }
};
}  // namespace

TEST_CASE("a training observer of one's own is told of the begin, each step, an interruption and the end") {
  const auto data = patterns(12);
  const Schedule schedule;
  train::TrainOptions o = quiet_options(4);
  o.checkpoint_every = 2;
  o.checkpoint_path = scratch("observed.safetensors");
  auto recorder = std::make_shared<Recorder>();
  o.observers.push_back(recorder);
  auto first = base_model(8);
  CHECK_THROWS_AS(train::train_stage1(first, schedule, data, o,
                                      [](const train::StepInfo& s) {
                                        if (s.step == 3) throw Killed{};
                                      }),
                  Killed);
  CHECK(recorder->events == std::vector<std::string>{"begin 0/4", "step 1", "step 2 saved", "step 3", "interrupted"});
  recorder->events.clear();
  auto second = base_model(8);
  train::train_stage1(second, schedule, data, o);  // resumes from step 2
  CHECK(recorder->events == std::vector<std::string>{"begin 2/4", "step 3", "step 4 saved", "end"});
}

namespace {
bool no_gnuplot() { return !progdiff::io::gnuplot_program().has_value(); }

// Image rows, in column x, whose pixel is closer to `c` than to white and to every other colour
// drawn (antialiasing blends the line's edges).
std::vector<int> rows_of_colour(const progdiff::io::DecodedImage& img, int x, progdiff::io::Rgb c) {
  std::vector<int> rows;
  for (int y = 0; y < img.height; ++y) {
    const auto* p = &img.pixels[static_cast<std::size_t>((y * img.width + x) * img.channels)];
    const int d = std::abs(p[0] - c.r) + std::abs(p[1] - c.g) + std::abs(p[2] - c.b);
    if (d < 60) rows.push_back(y);
  }
  return rows;
}
}  // namespace

TEST_CASE("CSV log and loss plot: rows per step, no duplicates after a resume, a PNG at the end") {
  const auto data = patterns(12);
  const Schedule schedule;
  train::TrainOptions o = quiet_options(4);
  o.checkpoint_every = 2;
  o.checkpoint_path = scratch("csv.safetensors");
  o.csv_path = scratch("logs") / "log.csv";  // a directory the trainer creates
  o.plot_path = scratch("loss.png");
  auto first = base_model(8);
  CHECK_THROWS_AS(train::train_stage1(first, schedule, data, o,
                                      [](const train::StepInfo& s) {
                                        if (s.step == 3) throw Killed{};
                                      }),
                  Killed);
  CHECK(train::CsvLog::read(o.csv_path, 100).size() == 3);  // the killed run logged step 3
  auto second = base_model(8);
  const auto report = train::train_stage1(second, schedule, data, o);
  const auto rows = train::CsvLog::read(o.csv_path, 100);
  REQUIRE(rows.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(rows[i].step == static_cast<std::int64_t>(i + 1));
    CHECK(rows[i].group == "0");
  }
  CHECK(rows[3].loss == doctest::Approx(report.steps[1].loss).epsilon(1e-8));
  CHECK(rows[3].lr == doctest::Approx(1e-3));
  CHECK(std::filesystem::exists(o.plot_path) == !no_gnuplot());  // the plot needs gnuplot (see below)
  if (!no_gnuplot()) {
    const auto png = progdiff::io::read_png(o.plot_path);
    CHECK(png.width == 640);
    CHECK(png.height == 400);
  }
}

TEST_CASE("line plot: gnuplot draws each series in its colour where its values put it" * doctest::skip(no_gnuplot())) {
  progdiff::io::PlotOptions o;
  o.width = 300, o.height = 200, o.line_width = 2, o.legend = false;
  o.x_min = 0, o.x_max = 10, o.y_min = 0, o.y_max = 10;
  const progdiff::io::Rgb red{200, 0, 0}, blue{0, 0, 200};
  // a high flat line, a low flat line: in any column the red one lies above the blue one
  const std::vector<progdiff::io::LineSeries> series{{"high", {0, 10}, {8, 8}, red}, {"low", {0, 10}, {2, 2}, blue}};
  const auto path = scratch("plot.png");
  REQUIRE(progdiff::io::write_line_plot(path.string(), series, o));
  const auto img = progdiff::io::read_png(path);
  CHECK(img.width == 300);
  CHECK(img.height == 200);
  for (int x : {100, 150, 200}) {
    const auto high = rows_of_colour(img, x, red), low = rows_of_colour(img, x, blue);
    REQUIRE(!high.empty());
    REQUIRE(!low.empty());
    CHECK(high.back() < low.front());
    CHECK(high.back() - high.front() <= 4);  // a line of width 2, not a filled area
  }
  CHECK_FALSE(std::filesystem::exists(path.string() + ".gp"));  // the script is cleaned up
  // nothing to draw (no series, or no finite point): empty axes, not an error
  const auto empty = scratch("empty.png");
  CHECK(progdiff::io::write_line_plot(empty.string(), {}, o));
  CHECK(std::filesystem::exists(empty));
  progdiff::io::PlotOptions log_o;
  log_o.log_y = true;
  CHECK(progdiff::io::write_line_plot(empty.string(), {{"nan", {1, 2}, {std::nan(""), -1.0}, red}}, log_o));
  CHECK_THROWS_AS(progdiff::io::write_line_plot(path.string(), {{"bad", {0, 1}, {1}, red}}, o), progdiff::ConfigError);
}

TEST_CASE("line plot: without gnuplot nothing is written and the caller is told") {
  const auto path = scratch("none.png");
  setenv("PROGDIFF_GNUPLOT", "", 1);
  const bool drawn = progdiff::io::write_line_plot(path.string(), {{"a", {0, 1}, {1, 2}, {0, 0, 0}}});
  unsetenv("PROGDIFF_GNUPLOT");
  CHECK_FALSE(drawn);
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("multi-stage resumes bit for bit; separate experts train and sample through the same trainer") {
  const auto data = patterns(12);
  const Schedule schedule;
  auto make = [] {
    Generator gen(31);
    Multi net(Multi::default_widths(8, {8, 4}), Multi::default_config());
    net.initialize(gen);
    return model::IntervalRouted<Multi>(std::move(net), {{0, 60, 100}, {}});
  };
  auto full_model = make();
  const auto full = train::train_multi_stage(full_model, schedule, data, quiet_options(4));
  train::TrainOptions o = quiet_options(4);
  o.checkpoint_every = 2;
  o.checkpoint_path = scratch("multi.safetensors");
  auto killed = make();
  CHECK_THROWS_AS(train::train_multi_stage(killed, schedule, data, o,
                                           [](const train::StepInfo& s) {
                                             if (s.step == 3) throw Killed{};
                                           }),
                  Killed);
  auto resumed_model = make();
  const auto resumed = train::train_multi_stage(resumed_model, schedule, data, o);
  REQUIRE(resumed.steps.size() == 2);
  CHECK(resumed.steps[0].loss == full.steps[2].loss);
  CHECK(resumed.steps[1].loss == full.steps[3].loss);
  CHECK(all_weights<double>(resumed_model) == all_weights<double>(full_model));

  using Experts = unet::SeparateExperts<Net, 2>;
  Generator gen(5);
  Experts experts({Net::default_widths(), narrow_widths()}, Net::default_config());
  experts.initialize(gen);
  model::IntervalRouted<Experts> routed(std::move(experts), {{0, 50, 100}, {}});
  static_assert(!model::IntervalRouted<Experts>::shares_parameters);
  CHECK(routed.describe().at("expert1.width.down.0.res.0") == "4");
  train::Trainer<model::IntervalRouted<Experts>, Schedule> trainer(routed, schedule, data, quiet_options(2),
                                                                   train::BatchMode::PerGroup);
  const auto report = trainer.run();
  REQUIRE(report.steps.size() == 2);
  CHECK(report.steps[1].group_losses.size() == 2);
  CHECK(std::isfinite(report.steps[1].group_losses[1]));
  const auto ddim = progdiff::sample::Ddim::from_schedule(schedule, 5);
  const auto x = progdiff::sample::generate<double, Cpu>(ddim, routed, Shape{2, 1, 8, 8}, 1).to_host();
  CHECK(std::all_of(x.begin(), x.end(), [](double v) { return std::isfinite(v); }));
}

}  // namespace progdiff_tests_trainer

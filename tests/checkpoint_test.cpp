// Checkpoints: the file layout, exact round trips, refusals that name what differs, the finite
// guard leaving the last checkpoint untouched, and a killed-and-resumed run that reproduces an
// uninterrupted one bit for bit.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "progdiff/data/batch_iterator.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/train.hpp"
#include "train_support.hpp"

namespace progdiff_tests_checkpoint {

using namespace progdiff;
using train_test::Cpu;
using train_test::TinyMlp;
namespace fs = std::filesystem;

namespace {

fs::path scratch_directory(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("progdiff_checkpoint_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<char> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::map<std::string, std::vector<float>> weights_of(TinyMlp<float>& model) {
  std::map<std::string, std::vector<float>> out;
  model.visit_parameters([&](const std::string& n, nn::Parameter<float, Cpu>& p) { out[n] = p.value.to_host(); },
                         std::string());
  return out;
}

const io::ModelDescription kDescription = {
    {"structure", "tiny_mlp"}, {"widths", "4,16"}, {"group_boundaries", "0,100"}, {"schedule", "linear:100"}};

data::ImageDataset random_dataset(std::int64_t count) {
  data::ImageDataset ds;
  ds.count = count, ds.channels = 1, ds.height = 2, ds.width = 2;
  Generator gen(99);
  for (std::int64_t i = 0; i < count * 4; ++i) ds.pixels.push_back(gen.normal<float>() * 0.5f);
  ds.labels.assign(static_cast<std::size_t>(count), 0);
  return ds;
}

// A complete small training run: model, AdamW, EMA, shuffled data, timestep and noise generators.
struct Run {
  static constexpr std::uint64_t kSeed = 1234;
  const data::ImageDataset& dataset;
  TinyMlp<float> model{4, 16};
  optim::AdamW<float, Cpu> optimizer{};
  optim::Ema<float, Cpu> ema{{0.99, optim::EmaWarmup::Simple}};
  data::ShufflingBatches batches;
  train::UniformTimesteps sampler{0, 100};
  schedule::Linear<100> schedule{};
  optim::LrSchedule lr{1e-2, 3, optim::LrDecay::Cosine, 40};
  std::map<std::string, Generator> generators{{"timesteps", Generator(kSeed, 1)}, {"noise", Generator(kSeed, 2)}};
  std::int64_t step = 0;
  bool poison = false;  // makes the next gradient NaN

  Run(const data::ImageDataset& ds, std::uint64_t init_seed) : dataset(ds), batches(ds, {4, kSeed}) {
    Generator init(init_seed);
    model.initialize(init);
    ema.initialize(model);
  }

  double train_step() {
    const auto batch = batches.next();
    const std::int64_t n = batch.images.dim(0);
    const Tensor<float, Cpu> x0 = batch.images.reshape(Shape{n, 4});
    const train::TimestepDraw draw = sampler.draw(generators.at("timesteps"), n);
    const std::vector<double> ab = loss::alpha_bars_at(schedule, draw.timesteps);
    Tensor<float, Cpu> noise(x0.shape());
    Cpu::normal<float>(noise.size(), Run::kSeed, 2, generators.at("noise").reserve(noise.size()), noise.data());
    const auto pair = loss::make_training_pair(x0, noise, std::span<const double>(ab),
                                               schedule::PredictionType::Epsilon, {loss::LossWeighting::MinSnr, 5.0});
    nn::zero_grad(model);
    const Tensor<float, Cpu> out = model.forward(pair.x_t);
    const auto loss = loss::weighted_mse(out, pair.target, std::span<const double>(pair.weights));
    (void)model.backward(loss.grad);
    if (poison)
      model.visit_parameters(
          [](const std::string& name, nn::Parameter<float, Cpu>& p) {
            if (name == "l1.bias") p.grad.fill(NAN);
          },
          std::string());
    train::check_finite(loss.loss, model, step, "group 0");
    optim::clip_grad_norm(model, 1.0);
    optimizer.step(model, lr.at(step));
    ema.update(model);
    ++step;
    return loss.loss;
  }

  void save(const fs::path& path) {
    io::TrainingState state;
    state.step = step;
    state.generators = generators;
    batches.save_position(state.counters, "data");
    io::save_checkpoint(path, model, kDescription, state, &optimizer, &ema);
  }

  void load(const fs::path& path) {
    const io::TrainingState state = io::load_checkpoint(path, model, kDescription, &optimizer, &ema);
    step = state.step;
    generators = state.generators;
    batches.restore_position(state.counters, "data");
  }
};

}  // namespace

TEST_CASE("checkpoint: file layout and an exact round trip of weights, optimizer, EMA and state") {
  const fs::path dir = scratch_directory("roundtrip");
  const auto ds = random_dataset(12);
  Run a(ds, 5);
  for (int k = 0; k < 4; ++k) a.train_step();
  const fs::path path = dir / "ckpt.safetensors";
  a.save(path);

  const io::SafetensorsFile f = io::read_safetensors(path);
  for (const char* name : {"model.l1.weight", "model.l2.bias", "optimizer.m.l1.weight", "optimizer.v.l2.weight",
                           "optimizer.step", "ema.l1.bias", "ema.updates", "train.step", "rng.noise", "rng.timesteps",
                           "counter.data.epoch", "counter.data.offset", "counter.data.seed"})
    CHECK_MESSAGE(f.contains(name), name);
  CHECK(f.at("model.l1.weight").shape == std::vector<std::int64_t>{16, 4});
  CHECK(f.values<std::int64_t>("optimizer.step")[0] == 4);
  CHECK(f.values<std::uint64_t>("rng.noise") == std::vector<std::uint64_t>{Run::kSeed, 2, 4 * 4 * 4});
  CHECK(f.metadata.at("widths") == "4,16");
  CHECK(f.metadata.at("progdiff.checkpoint") == "1");
  CHECK(f.metadata.at("progdiff.dtype") == "F32");

  Run b(ds, 77);  // different initial weights, all overwritten
  b.load(path);
  CHECK(weights_of(b.model) == weights_of(a.model));
  CHECK(b.step == 4);
  CHECK(b.optimizer.step_count() == 4);
  CHECK(b.ema.update_count() == 4);
  for (const auto& [name, m] : a.optimizer.moments()) {
    CHECK(b.optimizer.moments().at(name).m.to_host() == m.m.to_host());
    CHECK(b.optimizer.moments().at(name).v.to_host() == m.v.to_host());
    CHECK(b.ema.shadow().at(name).to_host() == a.ema.shadow().at(name).to_host());
  }
  CHECK(b.generators.at("timesteps").offset() == a.generators.at("timesteps").offset());
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: a different model description, a missing or mis-shaped tensor are refused by name") {
  const fs::path dir = scratch_directory("refusals");
  const auto ds = random_dataset(8);
  Run a(ds, 5);
  a.train_step();
  const fs::path path = dir / "ckpt.safetensors";
  a.save(path);
  TinyMlp<float> model(4, 16);
  Generator g(8);
  model.initialize(g);
  const auto before = weights_of(model);

  auto expected = kDescription;
  expected["widths"] = "4,32";
  expected["attention"] = "16";
  expected.erase("schedule");
  try {
    io::load_checkpoint(path, model, expected);
    FAIL("no error");
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    CHECK(msg.find(path.string()) != std::string::npos);
    CHECK(msg.find("key 'widths': expected '4,32', found '4,16'") != std::string::npos);
    CHECK(msg.find("key 'attention': expected '16', found nothing") != std::string::npos);
    CHECK(msg.find("key 'schedule': expected nothing, found 'linear:100'") != std::string::npos);
  }

  io::SafetensorsFile f = io::read_safetensors(path);
  f.tensors.erase("model.l2.bias");
  io::write_safetensors(dir / "missing.safetensors", f);
  CHECK_THROWS_WITH_AS(io::load_checkpoint(dir / "missing.safetensors", model, kDescription),
                       doctest::Contains("lacks tensor 'model.l2.bias' (parameter 'l2.bias' of the model)"),
                       FormatError);
  f = io::read_safetensors(path);
  f.put<float>("model.l1.bias", {15}, std::vector<float>(15));
  io::write_safetensors(dir / "shape.safetensors", f);
  CHECK_THROWS_WITH_AS(io::load_checkpoint(dir / "shape.safetensors", model, kDescription),
                       doctest::Contains("tensor 'model.l1.bias' (parameter 'l1.bias' of the model) has shape [15], "
                                         "the model expects [16]"),
                       ShapeError);
  f = io::read_safetensors(path);
  f.tensors.erase("optimizer.v.l1.weight");
  io::write_safetensors(dir / "no_v.safetensors", f);
  optim::AdamW<float, Cpu> opt;
  CHECK_THROWS_WITH_AS(io::load_checkpoint(dir / "no_v.safetensors", model, kDescription, &opt),
                       doctest::Contains("'optimizer.v.l1.weight'"), FormatError);
  CHECK(opt.step_count() == 0);
  CHECK(weights_of(model) == before);  // nothing was loaded by the failing calls
  TinyMlp<float> wider(4, 32);
  CHECK_THROWS_AS(io::load_checkpoint(path, wider, kDescription), ShapeError);
  auto reserved = kDescription;
  reserved["progdiff.extra"] = "x";
  io::TrainingState state;
  CHECK_THROWS_AS(io::save_checkpoint(dir / "r.safetensors", model, reserved, state), ConfigError);
  fs::remove_all(dir);
}

TEST_CASE("finite guard: a NaN gradient stops the run and leaves the last checkpoint untouched") {
  const fs::path dir = scratch_directory("guard");
  const auto ds = random_dataset(16);
  Run run(ds, 5);
  const fs::path path = dir / "ckpt.safetensors";
  for (int k = 0; k < 3; ++k) run.train_step();
  run.save(path);
  const auto saved = file_bytes(path);
  const auto weights = weights_of(run.model);
  run.poison = true;
  // The loop a caller writes: step, then checkpoint every step; the guard throws before both.
  auto step_and_checkpoint = [&] {
    run.train_step();
    run.save(path);
  };
  CHECK_THROWS_WITH_AS(step_and_checkpoint(),
                       doctest::Contains("training step 3 of group 'group 0': gradient of parameter 'l1.bias'"),
                       train::NonFiniteError);
  CHECK(file_bytes(path) == saved);
  CHECK(weights_of(run.model) == weights);  // the optimizer never ran
  CHECK(run.optimizer.step_count() == 3);
  Run reloaded(ds, 6);
  reloaded.load(path);
  CHECK(weights_of(reloaded.model) == weights);
  fs::remove_all(dir);
}

TEST_CASE("resume: a run killed after a checkpoint continues bit for bit like an uninterrupted one") {
  const fs::path dir = scratch_directory("resume");
  const auto ds = random_dataset(24);  // 6 batches of 4 per epoch: the run crosses epochs
  constexpr int kSteps = 14, kEvery = 4, kKillAfter = 10;

  Run whole(ds, 5);
  std::vector<double> reference;
  for (int k = 0; k < kSteps; ++k) reference.push_back(whole.train_step());

  const fs::path path = dir / "ckpt.safetensors";
  std::int64_t resumed_from = 0;
  {
    Run first(ds, 5);
    for (int k = 0; k < kKillAfter; ++k) {
      CHECK(first.train_step() == reference[static_cast<std::size_t>(k)]);
      if (first.step % kEvery == 0) first.save(path);
    }
    resumed_from = first.step / kEvery * kEvery;
    // Killed while writing the next checkpoint: a partial temporary file stays behind.
    const auto bytes = file_bytes(path);
    std::ofstream partial(dir / ".ckpt.safetensors.tmp.4242.0", std::ios::binary);
    partial.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  CHECK(resumed_from == 8);

  Run second(ds, 1001);  // a fresh process: other initial weights, fresh generators
  second.load(path);
  CHECK(second.step == resumed_from);
  CHECK(io::remove_stale_temporaries(path) == 1);
  CHECK_FALSE(fs::exists(dir / ".ckpt.safetensors.tmp.4242.0"));
  for (std::int64_t k = resumed_from; k < kSteps; ++k) {
    INFO("step " << k);
    const double loss = second.train_step();
    CHECK(loss == reference[static_cast<std::size_t>(k)]);  // bit for bit
  }
  CHECK(weights_of(second.model) == weights_of(whole.model));
  for (const auto& [name, w] : whole.ema.shadow()) CHECK(second.ema.shadow().at(name).to_host() == w.to_host());
  fs::remove_all(dir);
}

}  // namespace progdiff_tests_checkpoint

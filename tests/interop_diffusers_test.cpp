// diffusers interop: UNet2DModel folders in and out, scheduler_config.json out, checked against
// diffusers itself through the fixtures of tools/fixtures/make_diffusers_fixtures.py
// (diffusers 0.27.2): outputs of random-weight models on fixed inputs, computed in float64,
// diffusers' loading of progdiff's own exports, and diffusers' alphas_cumprod and timesteps of
// the scheduler configs progdiff writes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/interop/diffusers_export.hpp"
#include "progdiff/interop/diffusers_import.hpp"
#include "progdiff/interop/diffusers_progressive.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/nn/downsample.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_interop_diffusers {

namespace pd = progdiff;
namespace fs = std::filesystem;
namespace unet = progdiff::unet;
namespace interop = progdiff::interop;

namespace {

const fs::path kDir = fs::path(PROGDIFF_FIXTURES_DIR) / "diffusers";

// The U-Net types the fixtures' configurations describe (widths come from the configs).
using SmallAttention = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                                  unet::BaseChannels<16>, unet::GroupNormGroups<4>>;
using OddChannels = unet::UNet<unet::Levels<1, 1, 2>, unet::ResBlocks<2>, unet::AttentionAt<12>, unet::ImageSize<12>,
                               unet::ImageChannels<1>, unet::BaseChannels<15>, unet::GroupNormGroups<3>>;
using DdpmCifar10 = unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>,
                               unet::BaseChannels<128>>;
using DdpmCifar10Variance = unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>,
                                       unet::ImageSize<32>, unet::BaseChannels<128>, unet::LearnedVariance>;
using PipelineNet = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                               unet::BaseChannels<8>, unet::GroupNormGroups<4>>;

// max |out - y| / max |y| on the fixture's inputs: the error on the scale of the reference.
template <class Net>
double error_against(Net& net, const fs::path& io_path) {
  const auto file = pd::io::read_safetensors(io_path);
  const auto x = pd::io::to_tensor<float>(file, "x"), t = pd::io::to_tensor<float>(file, "t");
  const auto y = file.values<double>("y");
  const pd::InferenceMode inference;
  net.set_training(false);
  const auto out = net.forward(x, t).to_host();
  REQUIRE(out.size() == y.size());
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    err = std::max(err, std::abs(out[i] - y[i]));
    scale = std::max(scale, std::abs(y[i]));
  }
  if (std::getenv("PROGDIFF_PRINT_ERRORS")) std::printf("%s: %.3g\n", io_path.string().c_str(), err / scale);
  return err / scale;
}

// A scratch copy of a fixture folder, removed at the end of the test.
struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& name, const fs::path& from = {}) {
    dir = fs::temp_directory_path() / ("progdiff_interop_" + name);
    fs::remove_all(dir);
    if (!from.empty()) fs::copy(from, dir, fs::copy_options::recursive);
  }
  ~Scratch() { fs::remove_all(dir); }
};

nlohmann::json read_json(const fs::path& p) { return progdiff::read_json_file(p); }
void write_json(const fs::path& p, const nlohmann::json& j) { std::ofstream(p) << j.dump(2); }

template <class Net, class E>
std::string import_error(const fs::path& dir) {
  try {
    interop::import_diffusers_unet<Net>(dir);
  } catch (const E& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("diffusers UNet2DModels import and match diffusers' outputs") {
  SUBCASE("small, attention with 4 heads, flip_sin_to_cos, freq_shift 0") {
    auto m = interop::import_diffusers_unet<SmallAttention>(kDir / "small_attention");
    CHECK(m.net.config().heads == 4);
    CHECK(m.net.config().time_shift == 0.0);
    CHECK(error_against(m.net, kDir / "small_attention" / "io.safetensors") < 1e-4);
  }
  SUBCASE("odd widths and sinusoid, one channel, DDPM padding, attention at the finest level") {
    auto m = interop::import_diffusers_unet<OddChannels>(kDir / "odd_channels");
    CHECK(m.net.widths().at("up.2.res.2") == 27);
    CHECK(m.net.config().downsample_padding == 0);
    CHECK(error_against(m.net, kDir / "odd_channels" / "io.safetensors") < 1e-4);
  }
  SUBCASE("the DDPM CIFAR-10 structure at a sixteenth of its width") {
    auto m = interop::import_diffusers_unet<DdpmCifar10>(kDir / "ddpm_tiny");
    CHECK(m.net.widths() == DdpmCifar10::default_widths(8));
    CHECK(error_against(m.net, kDir / "ddpm_tiny" / "io.safetensors") < 1e-4);
  }
  SUBCASE("a pipeline folder: unet/ and scheduler/") {
    auto m = interop::import_diffusers_unet<PipelineNet>(kDir / "pipeline");
    CHECK(m.folder == kDir / "pipeline" / "unet");
    CHECK(error_against(m.net, kDir / "pipeline" / "io.safetensors") < 1e-4);
    REQUIRE(m.schedule.has_value());
    const auto expected = read_json(kDir / "pipeline" / "alphas_cumprod.json")["alphas_cumprod"];
    REQUIRE(m.schedule->size() == expected.size());
    double worst = 0;
    for (std::size_t i = 0; i < expected.size(); ++i)
      worst = std::max(worst, std::abs(m.schedule->alpha_bar(i) - expected[i].get<double>()));
    CHECK(worst < 1e-6);  // diffusers computes in float32
  }
}

TEST_CASE("the DDPM CIFAR-10 config (google/ddpm-cifar10-32) maps onto DDPM's type and 35,746,307 parameters") {
  const auto config = interop::read_diffusers_unet_config(kDir / "ddpm_cifar10_config" / "config.json");
  CHECK(interop::diffusers_structure_mismatches<DdpmCifar10>(config).empty());
  const auto widths = interop::widths_from_diffusers<DdpmCifar10>(config);
  CHECK(widths == DdpmCifar10::default_widths());
  const auto u = interop::unet_config_from_diffusers<DdpmCifar10>(config);
  CHECK(u.groups == 32);
  CHECK(u.heads == 1);
  CHECK(u.eps == 1e-6);
  CHECK(u.time_shift == 1.0);
  CHECK(u.downsample_padding == 0);
  CHECK(!config.flip_sin_to_cos);
  const DdpmCifar10 net(widths, u);
  CHECK(net.parameter_count() == 35'746'307);
  // Another structure is told every way it differs.
  const auto m = interop::diffusers_structure_mismatches<SmallAttention>(config);
  REQUIRE(m.size() == 3);  // attention is compared only once the level counts agree
  CHECK(m[0] == "block_out_channels has 4 levels, the type's Levels<...> has 2");
  CHECK(m[1] == "layers_per_block is 2, the type has ResBlocks<1>");
  CHECK(m[2] == "sample_size is 32, the type has ImageSize<16>");
}

TEST_CASE("progdiff's exports load in diffusers with the same outputs, and import back") {
  const fs::path exported = kDir / "progdiff_export" / "pipeline";
  // The folder progdiff wrote, as diffusers computed with it.
  auto m = interop::import_diffusers_unet<DdpmCifar10>(exported);
  CHECK(error_against(m.net, kDir / "progdiff_export" / "export_io.safetensors") < 1e-4);

  SUBCASE("exporting the import again gives the same files") {
    Scratch out("reexport");
    interop::export_diffusers_pipeline(m.net, pd::schedule::ScheduleConfig{}, out.dir);
    CHECK(read_json(out.dir / "unet" / "config.json") == read_json(exported / "unet" / "config.json"));
    CHECK(read_json(out.dir / "model_index.json") == read_json(exported / "model_index.json"));
    CHECK(read_json(out.dir / "scheduler" / "scheduler_config.json") ==
          read_json(exported / "scheduler" / "scheduler_config.json"));
    const auto a = pd::io::read_safetensors(out.dir / "unet" / interop::kDiffusersWeights);
    const auto b = pd::io::read_safetensors(exported / "unet" / interop::kDiffusersWeights);
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (const auto& [key, record] : b.tensors) {
      REQUIRE(a.contains(key));
      CHECK(a.at(key).shape == record.shape);
      CHECK(a.at(key).bytes == record.bytes);
    }
  }
  SUBCASE("a diffusers model with flip_sin_to_cos exports unflipped and computes the same") {
    auto s = interop::import_diffusers_unet<SmallAttention>(kDir / "small_attention");
    Scratch out("flip");
    interop::export_diffusers_unet(s.net, out.dir);
    CHECK(read_json(out.dir / "config.json")["flip_sin_to_cos"] == false);
    CHECK(read_json(out.dir / "config.json")["attention_head_dim"] == 8);
    auto back = interop::import_diffusers_unet<SmallAttention>(out.dir);
    CHECK(error_against(back.net, kDir / "small_attention" / "io.safetensors") < 1e-4);
  }
  SUBCASE("a progressive model of copies: one folder per group and a manifest") {
    pd::Generator gen(3);
    auto model =
        pd::model::Progressive<DdpmCifar10>::copies_of(m.net, pd::group::Partition{{0, 250, 600, 1000}, {}}, gen);
    Scratch out("progressive");
    const pd::schedule::ScheduleConfig linear;
    interop::export_diffusers_progressive(model, out.dir, &linear);
    const auto manifest = read_json(out.dir / "progressive.json");
    REQUIRE(manifest["groups"].size() == 3);
    CHECK(manifest["groups"][1]["folder"] == "group_1");
    CHECK(manifest["groups"][1]["begin"] == 250);
    CHECK(manifest["groups"][1]["end"] == 600);
    CHECK(manifest["num_train_timesteps"] == 1000);
    CHECK(fs::exists(out.dir / "scheduler" / "scheduler_config.json"));
    auto back = interop::import_diffusers_progressive<DdpmCifar10>(out.dir);
    CHECK(back.partition().starts == std::vector<std::int64_t>{0, 250, 600, 1000});
    for (std::int64_t k = 0; k < back.group_count(); ++k)
      CHECK(error_against(back.denoiser(k), kDir / "progdiff_export" / "export_io.safetensors") < 1e-4);
  }
  SUBCASE("a pruned width table is refused, naming the layer") {
    auto widths = m.net.widths();
    for (auto& l : widths.layers)
      if (l.layer == "down.1.res.1") l.channels = 12;
    DdpmCifar10 pruned(widths, m.net.config());
    Scratch out("pruned");
    try {
      interop::export_diffusers_unet(pruned, out.dir);
      FAIL("no error");
    } catch (const pd::ConfigError& e) {
      CHECK(std::string(e.what()).find("down.1.res.1") != std::string::npos);
    }
    CHECK(!fs::exists(out.dir / "config.json"));
  }
}

TEST_CASE("a learned-variance export: 2C outputs and learned_range, as diffusers computed with it") {
  const fs::path exported = kDir / "progdiff_export" / "learned_variance_pipeline";
  // diffusers loaded the folder (its out_channels 6 and variance_type checked by the generator)
  // and computed both halves of the output: the prediction and the variance interpolation v.
  auto m = interop::import_diffusers_unet<DdpmCifar10Variance>(exported);
  CHECK(read_json(exported / "unet" / "config.json")["out_channels"] == 6);
  CHECK(read_json(exported / "scheduler" / "scheduler_config.json")["variance_type"] == "learned_range");
  CHECK(error_against(m.net, kDir / "progdiff_export" / "learned_variance_io.safetensors") < 1e-4);
  REQUIRE(m.schedule.has_value());
  CHECK(m.schedule->size() == 4000);

  SUBCASE("a scheduler that reads the outputs otherwise is refused, naming the file and the key") {
    Scratch copy("variance_type", exported);
    auto scheduler = read_json(copy.dir / "scheduler" / "scheduler_config.json");
    scheduler["variance_type"] = "fixed_small";
    write_json(copy.dir / "scheduler" / "scheduler_config.json", scheduler);
    const std::string fixed = import_error<DdpmCifar10Variance, pd::ConfigError>(copy.dir);
    CHECK(fixed.find("scheduler_config.json: key \"variance_type\" is \"fixed_small\"") != std::string::npos);
    CHECK(fixed.find("learned_range") != std::string::npos);
    scheduler["variance_type"] = "learned";  // a log-variance, which progdiff's nets do not predict
    write_json(copy.dir / "scheduler" / "scheduler_config.json", scheduler);
    CHECK(import_error<DdpmCifar10Variance, pd::ConfigError>(copy.dir).find("\"learned\"") != std::string::npos);
  }
  SUBCASE("a type without LearnedVariance is told the out_channels it would need") {
    const std::string e = import_error<DdpmCifar10, pd::ConfigError>(exported);
    CHECK(e.find("out_channels is 6, the type has ImageChannels<3>") != std::string::npos);
  }
  SUBCASE("a C-output pipeline is refused by a LearnedVariance type") {
    const std::string e = import_error<DdpmCifar10Variance, pd::ConfigError>(kDir / "progdiff_export" / "pipeline");
    CHECK(e.find("out_channels is 3, the type has 2 x ImageChannels<3> (LearnedVariance)") != std::string::npos);
  }
}

TEST_CASE("scheduler_config.json: progdiff writes, diffusers reads the same alphas_cumprod and timesteps") {
  const auto reference = read_json(kDir / "progdiff_export" / "schedulers.json");
  REQUIRE(reference["schedulers"].size() == 5);
  for (const auto& s : reference["schedulers"]) {
    const std::string name = s["name"];
    CAPTURE(name);
    const fs::path path = kDir / "progdiff_export" / "schedulers" / name / "scheduler_config.json";
    const auto schedule = pd::schedule::Schedule::from_file(path.string());
    // What progdiff writes for this schedule is the file diffusers read.
    CHECK(interop::diffusers_scheduler_config(schedule.config()) == read_json(path));
    const auto& alphas = s["alphas_cumprod"];
    REQUIRE(schedule.size() == alphas.size());
    double worst = 0;
    for (std::size_t i = 0; i < alphas.size(); ++i)
      worst = std::max(worst, std::abs(schedule.alpha_bar(i) - alphas[i].get<double>()));
    CHECK(worst < 1e-6);  // diffusers computes in float32
    for (const auto& [count, steps] : s["timesteps"].items())
      CHECK(schedule.timesteps(std::stoll(count)) == steps.get<std::vector<std::int64_t>>());
  }
  SUBCASE("typed schedules write the same keys") {
    const auto j = interop::diffusers_scheduler_config(pd::schedule::Cosine<4000>{});
    CHECK(j["beta_schedule"] == "squaredcos_cap_v2");
    CHECK(j["num_train_timesteps"] == 4000);
  }
  SUBCASE("schedules diffusers cannot hold are refused with the reason") {
    for (auto kind :
         {pd::schedule::ScheduleKind::VP, pd::schedule::ScheduleKind::VE, pd::schedule::ScheduleKind::EDM}) {
      pd::schedule::ScheduleConfig c;
      c.kind = kind;
      CHECK_THROWS_WITH_AS(interop::diffusers_scheduler_config(c), doctest::Contains("continuous-time"),
                           pd::ConfigError);
    }
    pd::schedule::ScheduleConfig c;
    c.kind = pd::schedule::ScheduleKind::Cosine;
    c.betas.cosine_offset = 0.02;
    CHECK_THROWS_WITH_AS(interop::diffusers_scheduler_config(c), doctest::Contains("squaredcos_cap_v2 fixes them"),
                         pd::ConfigError);
  }
}

TEST_CASE("malformed or mismatched diffusers folders: errors name the file and the key") {
  const fs::path source = kDir / "small_attention";
  using Net = SmallAttention;
  SUBCASE("missing config.json") {
    Scratch s("no_config", source);
    fs::remove(s.dir / "config.json");
    const auto e = import_error<Net, pd::IoError>(s.dir);
    CHECK(e.find((s.dir / "config.json").string()) != std::string::npos);
  }
  SUBCASE("missing weights") {
    Scratch s("no_weights", source);
    fs::remove(s.dir / interop::kDiffusersWeights);
    const auto e = import_error<Net, pd::IoError>(s.dir);
    CHECK(e.find((s.dir / interop::kDiffusersWeights).string() + ": missing") != std::string::npos);
  }
  SUBCASE("unknown block type") {
    Scratch s("block_type", source);
    auto j = read_json(s.dir / "config.json");
    j["down_block_types"][1] = "CrossAttnDownBlock2D";
    write_json(s.dir / "config.json", j);
    const auto e = import_error<Net, pd::ConfigError>(s.dir);
    CHECK(e.find("config.json") != std::string::npos);
    CHECK(e.find("\"down_block_types\"") != std::string::npos);
    CHECK(e.find("CrossAttnDownBlock2D") != std::string::npos);
    CHECK(e.find("supports \"DownBlock2D\" and \"AttnDownBlock2D\"") != std::string::npos);
  }
  SUBCASE("a setting progdiff cannot express") {
    Scratch s("fourier", source);
    auto j = read_json(s.dir / "config.json");
    j["time_embedding_type"] = "fourier";
    write_json(s.dir / "config.json", j);
    CHECK(import_error<Net, pd::ConfigError>(s.dir).find("\"time_embedding_type\" = \"fourier\" is not supported") !=
          std::string::npos);
  }
  SUBCASE("a config of another structure lists every mismatch") {
    const auto e = import_error<DdpmCifar10, pd::ConfigError>(source);
    CHECK(e.find("mismatches") != std::string::npos);
    CHECK(e.find("block_out_channels has 2 levels, the type's Levels<...> has 4") != std::string::npos);
    CHECK(e.find("layers_per_block is 1, the type has ResBlocks<2>") != std::string::npos);
    CHECK(e.find("sample_size is 16, the type has ImageSize<32>") != std::string::npos);
  }
  SUBCASE("attention where the type has none") {
    Scratch s("attention", source);
    auto j = read_json(s.dir / "config.json");
    j["up_block_types"][0] = "UpBlock2D";
    write_json(s.dir / "config.json", j);
    CHECK(import_error<Net, pd::ConfigError>(s.dir).find("up_block_types[0] is UpBlock2D: level 1 (8x8) attends") !=
          std::string::npos);
  }
  SUBCASE("a tensor of the wrong shape") {
    Scratch s("shape", source);
    auto j = read_json(s.dir / "config.json");
    j["block_out_channels"] = {16, 40};
    write_json(s.dir / "config.json", j);
    const auto e = import_error<Net, pd::ShapeError>(s.dir);
    CHECK(e.find(interop::kDiffusersWeights) != std::string::npos);
    CHECK(e.find("down_blocks.1.resnets.0.conv1.weight") != std::string::npos);
  }
  SUBCASE("a missing tensor and an extra tensor") {
    Scratch s("tensors", source);
    const fs::path weights = s.dir / interop::kDiffusersWeights;
    auto file = pd::io::read_safetensors(weights);
    auto removed = file;
    removed.tensors.erase("mid_block.attentions.0.to_k.bias");
    pd::io::write_safetensors(weights, removed);
    auto e = import_error<Net, pd::FormatError>(s.dir);
    CHECK(e.find(weights.string() + ": no tensor 'mid_block.attentions.0.to_k.bias'") != std::string::npos);
    auto extra = file;
    extra.put<float>("class_embedding.weight", {2}, std::vector<float>{1, 2});
    pd::io::write_safetensors(weights, extra);
    e = import_error<Net, pd::FormatError>(s.dir);
    CHECK(e.find(weights.string() + ": tensor 'class_embedding.weight' not part of the model") != std::string::npos);
  }
  SUBCASE("attention under its names before diffusers 0.14 (query, key, value, proj_attn)") {
    Scratch s("legacy", source);
    const fs::path weights = s.dir / interop::kDiffusersWeights;
    auto file = pd::io::read_safetensors(weights);
    pd::io::SafetensorsFile renamed;
    for (auto& [key, record] : file.tensors) {
      const std::string legacy = interop::legacy_diffusers_name(key);
      renamed.tensors[legacy.empty() ? key : legacy] = record;
    }
    CHECK(renamed.contains("down_blocks.1.attentions.0.proj_attn.weight"));
    pd::io::write_safetensors(weights, renamed);
    auto m = interop::import_diffusers_unet<Net>(s.dir);
    CHECK(error_against(m.net, source / "io.safetensors") < 1e-4);
  }
}

TEST_CASE("Downsample with DDPM's padding at the end: the input gradient matches central differences") {
  pd::nn::Downsample<double, pd::backend::Cpu> down(pd::nn::DownsampleConfig{3, 4, 0});
  pd::Generator gen(5);
  down.initialize(gen);
  const pd::Shape shape{2, 3, 6, 5};
  std::vector<double> xv(static_cast<std::size_t>(shape.numel())), wv;
  for (auto& v : xv) v = gen.normal<double>();
  const auto x = pd::Tensor<double>::from_host(shape, xv);
  const pd::Shape out = down.output_shape(shape);
  CHECK(out == pd::Shape{2, 4, 3, 2});  // floor(H / 2), floor(W / 2) as diffusers' padding 0
  for (std::int64_t i = 0; i < out.numel(); ++i) wv.push_back(gen.normal<double>());
  const auto loss = [&](const std::vector<double>& v) {
    pd::nn::Downsample<double, pd::backend::Cpu> probe = down;
    const auto y = probe.forward(pd::Tensor<double>::from_host(shape, v)).to_host();
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += y[i] * wv[i];
    return s;
  };
  down.forward(x);
  const auto dx = down.backward(pd::Tensor<double>::from_host(out, wv)).to_host();
  double worst = 0;
  for (std::size_t i = 0; i < xv.size(); i += 7) {
    auto plus = xv, minus = xv;
    plus[i] += 1e-5, minus[i] -= 1e-5;
    worst = std::max(worst, std::abs((loss(plus) - loss(minus)) / 2e-5 - dx[i]));
  }
  CHECK(worst < 1e-8);
}

}  // namespace progdiff_tests_interop_diffusers

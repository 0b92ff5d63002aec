// TDC stage 2 on a model trained elsewhere (interop/diffusers_base.hpp): a diffusers DDPM
// pipeline folder of tools/fixtures/make_diffusers_fixtures.py becomes the stage-1 base; the
// weights TDC reads are diffusers' (its outputs match diffusers' own on the fixture's inputs,
// through the unpruned group's saved copy too), each group is pruned within its budget and
// fine-tuned, and folders or schedulers that do not fit are refused naming the key.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/group/uniform_split.hpp"
#include "progdiff/interop/diffusers_base.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/unet/unet.hpp"
#include "train_support.hpp"

namespace progdiff_tests_interop_tdc_base {

namespace {

namespace pd = progdiff;
namespace fs = std::filesystem;
namespace unet = progdiff::unet;
namespace interop = progdiff::interop;
namespace train = progdiff::train;
namespace tdc = progdiff::tdc;
namespace io = progdiff::io;

const fs::path kDir = fs::path(PROGDIFF_FIXTURES_DIR) / "diffusers";

// The structure of the fixtures' pipeline/unet (8x8, 3 channels, [8, 16], attention in the
// middle only) and of small_attention (16x16, attention at 8x8).
using PipelineNet = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<0>>;
using SmallAttention = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                                  unet::BaseChannels<16>, unet::GroupNormGroups<4>>;

// The main job's two scales (apps/progressive/models.hpp), whose widths are run-time values.
using JobSmall =
    unet::UNet<unet::Levels<1, 2, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<32>,
               unet::ImageChannels<1>, unet::BaseChannels<32>, unet::GroupNormGroups<8>, unet::DropoutPercent<0>>;
using JobPaper =
    unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>,
               unet::ImageChannels<1>, unet::BaseChannels<128>, unet::GroupNormGroups<32>, unet::DropoutPercent<10>>;

const train_test::ScratchDir scratch("progdiff_interop_tdc_base_test");

// max |model(x, t) - y| / max |y| over the fixture's inputs (diffusers' float64 outputs).
template <class Model>
double error_against(Model& model, const fs::path& io_path) {
  const auto file = pd::io::read_safetensors(io_path);
  const auto x = pd::io::to_tensor<float>(file, "x");
  std::vector<std::int64_t> t;
  for (float v : file.values<float>("t")) t.push_back(static_cast<std::int64_t>(v));
  const auto y = file.values<double>("y");
  const auto out = model.predict(x, t).to_host();
  REQUIRE(out.size() == y.size());
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    err = std::max(err, std::abs(out[i] - y[i]));
    scale = std::max(scale, std::abs(y[i]));
  }
  return err / scale;
}

// Random images in [-1, 1] of the pipeline's shape.
pd::data::ImageDataset images(std::int64_t count, std::uint64_t seed) {
  pd::data::ImageDataset d;
  d.count = count, d.channels = 3, d.height = 8, d.width = 8;
  pd::Generator gen(seed);
  for (std::int64_t i = 0; i < count * d.sample_size(); ++i) d.pixels.push_back(static_cast<float>(gen.uniform(-1, 1)));
  d.labels.assign(static_cast<std::size_t>(count), 0);
  return d;
}

tdc::TdcOptions tdc_options(const fs::path& dir) {
  tdc::TdcOptions o;
  o.out_dir = dir;
  o.pruning = tdc::TdcPruning::Magnitude;
  o.seed = 3;
  o.eval_samples = 4;
  o.eval_batch_size = 4;
  o.finetune.steps = 2;
  o.finetune.batch_size = 4;
  o.finetune.lr.lr = 1e-3;
  o.finetune.checkpoint_every = 2;
  o.finetune.progress.mode = train::ProgressOptions::Mode::Off;
  return o;
}

template <class Net, class S, class E = pd::ConfigError>
std::string base_error(const fs::path& dir, const S& s,
                       pd::schedule::PredictionType p = pd::schedule::PredictionType::Epsilon) {
  try {
    interop::import_diffusers_base<Net>(dir, s, p);
  } catch (const E& e) {
    return e.what();
  }
  return "no error";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("TDC stage 2 on an imported diffusers pipeline: the base TDC reads is diffusers' model") {
  const auto schedule =
      pd::schedule::Schedule::from_file((kDir / "pipeline" / "scheduler" / "scheduler_config.json").string());
  auto imported = interop::import_diffusers_base<PipelineNet>(kDir / "pipeline", schedule);
  CHECK(imported.schedule_checked);
  CHECK(imported.base.group_count() == 1);
  CHECK(imported.base.partition().size() == 1000);
  CHECK(error_against(imported.base, kDir / "pipeline" / "io.safetensors") < 1e-4);

  // Two groups: the noisier one pruned to 60% of the base's FLOPs, the other kept whole.
  pd::group::Partition partition = pd::group::UniformSplit{2}.group(schedule);
  partition.budgets = {1.0, 0.6};
  const auto train_data = images(16, 1), validation = images(4, 2);
  const fs::path dir = scratch("tdc");
  auto r = tdc::run_tdc(imported.base, partition, schedule, train_data, validation, tdc_options(dir));
  REQUIRE(r.model.has_value());
  const pd::Shape image{1, 3, 8, 8};
  const auto base_flops = imported.base.denoiser(0).flops(image);
  CHECK(r.report.base_flops == base_flops);
  CHECK(r.model->denoiser(1).flops(image) <= 0.6 * static_cast<double>(base_flops));
  CHECK(r.model->denoiser(1).parameter_count() < imported.base.parameter_count());
  CHECK(r.model->denoiser(0).widths() == imported.base.denoiser(0).widths());

  // The unpruned group's starting point, as the pipeline saved it, is diffusers' model.
  pd::Generator gen(0);
  const fs::path pruned = dir / "group0" / "pruned.safetensors";
  auto start = pd::model::Progressive<PipelineNet>::from_description(pd::io::read_safetensors(pruned).metadata, gen,
                                                                     imported.base.denoiser(0).config());
  auto description = start.describe();
  pd::model::describe_schedule(description, schedule);
  io::load_checkpoint(pruned, start, description);
  CHECK(error_against(start, kDir / "pipeline" / "io.safetensors") < 1e-4);

  // The assembled model routes a mixed batch to fine-tuned groups (weights moved off diffusers').
  const double tuned = error_against(*r.model, kDir / "pipeline" / "io.safetensors");
  CHECK(std::isfinite(tuned));
  CHECK(tuned > 1e-4);
}

TEST_CASE("a folder or scheduler that cannot be stage 2's base is refused naming the key") {
  const pd::schedule::Linear<1000> linear;
  const auto cosine =
      pd::schedule::Schedule::from_file((kDir / "pipeline" / "scheduler" / "scheduler_config.json").string());
  SUBCASE("the pipeline's cosine scheduler against a linear schedule") {
    const std::string e = base_error<PipelineNet>(kDir / "pipeline", linear);
    CHECK(contains(e, "scheduler_config.json"));
    CHECK(contains(e, "key \"beta_schedule\" = \"squaredcos_cap_v2\""));
    CHECK(contains(e, "linear betas 0.0001"));
  }
  SUBCASE("another number of timesteps, another prediction type") {
    const std::string steps = base_error<PipelineNet>(kDir / "pipeline", pd::schedule::Linear<500>{});
    CHECK(contains(steps, "key \"num_train_timesteps\" = 1000"));
    CHECK(contains(steps, "over 500 timesteps"));
    const std::string v = base_error<PipelineNet>(kDir / "pipeline", cosine, pd::schedule::PredictionType::VPrediction);
    CHECK(contains(v, "key \"prediction_type\" = \"epsilon\""));
    CHECK(contains(v, "predicting v_prediction"));
  }
  SUBCASE("a model folder of another structure, and no folder at all") {
    const std::string e = base_error<PipelineNet>(kDir / "small_attention", linear);
    CHECK(contains(e, "small_attention/config.json"));
    CHECK(contains(e, "sample_size is 16, the type has ImageSize<8>"));
    const std::string missing = base_error<PipelineNet, pd::schedule::Linear<1000>, pd::IoError>(kDir / "none", linear);
    CHECK(contains(missing, "none/config.json: missing"));
  }
  SUBCASE("a program built for two types takes the one that fits, or lists both types' mismatches") {
    const std::array<std::string, 2> names{"pipeline type", "attention type"};
    const auto fit = [&](const std::string& folder) {
      const fs::path config = kDir / folder / "config.json";
      return interop::diffusers_fitting_type<PipelineNet, SmallAttention>(interop::read_diffusers_unet_config(config),
                                                                          config.string(), names);
    };
    CHECK(fit("pipeline/unet") == 0);
    CHECK(fit("small_attention") == 1);
    std::string e;
    try {
      fit("odd_channels");
    } catch (const pd::ConfigError& error) {
      e = error.what();
    }
    CHECK(contains(e, "fits none of the 2 U-Net types"));
    CHECK(contains(e, "pipeline type:"));
    CHECK(contains(e, "attention type:"));
    CHECK(contains(e, "in_channels is 1, the type has ImageChannels<3>"));
    CHECK(contains(e, "layers_per_block is 2, the type has ResBlocks<1>"));
  }
}

TEST_CASE("the main job's --base-from: a pipeline of its small structure and schedule imports; others are refused") {
  const pd::schedule::Linear<1000> job_schedule;  // the main job's schedule
  auto imported = interop::import_diffusers_base<JobSmall>(kDir / "fashion_pipeline", job_schedule);
  CHECK(imported.schedule_checked);
  CHECK(imported.base.denoiser(0).widths() == JobSmall::default_widths(8));
  CHECK(imported.base.denoiser(0).config().groups == 4);
  CHECK(error_against(imported.base, kDir / "fashion_pipeline" / "io.safetensors") < 1e-4);

  const std::array<std::string, 2> names{"the small scale", "the paper scale"};
  const auto fit = [&](const std::string& folder) {
    const fs::path config = kDir / folder / "config.json";
    return interop::diffusers_fitting_type<JobSmall, JobPaper>(interop::read_diffusers_unet_config(config),
                                                               config.string(), names);
  };
  CHECK(fit("fashion_pipeline/unet") == 0);
  std::string e;
  try {
    fit("ddpm_tiny");  // DDPM CIFAR-10's structure: the paper scale's, but three channels
  } catch (const pd::ConfigError& error) {
    e = error.what();
  }
  CHECK(contains(e, "ddpm_tiny/config.json: the UNet2DModel fits none"));
  CHECK(
      contains(e, "the paper scale:\n    - in_channels is 3, the type has ImageChannels<1>\n    - out_channels is 3"));
  CHECK(contains(e, "block_out_channels has 4 levels, the type's Levels<...> has 3"));
}

}  // namespace progdiff_tests_interop_tdc_base

// A first program with progdiff, small enough to copy: a progressive diffusion model on
// synthetic images in a few seconds, with no data set to install.
//
//   1. a U-Net from the library's presets (unet/small_presets.hpp): gray 16x16 images;
//   2. the timesteps of a 1000-step schedule split into 3 groups by FLOPs intervals;
//   3. stage 1 trains the base on every timestep, stage 2 fine-tunes a copy per group;
//   4. DDIM samples a few images from the grouped model;
//   5. the model is saved to first_program.safetensors, loaded into a fresh copy, and samples
//      the same.
//
// Linked against progdiff::precompiled (CMake), the preset's U-Net, its training, sampling and
// checkpoints come compiled from the library, and this file compiles in seconds
// (docs/build.md); a net of your own (unet::UNet<...options...>) works the same way but is
// compiled in your program. The program checks its own result: finite losses and samples that
// the saved model reproduces; exit status 1 otherwise.
#include <cmath>
#include <cstdio>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/group/flops_interval.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/unet/small_presets.hpp"
#include "progdiff/unet/unet.hpp"

namespace pd = progdiff;
using Cpu = pd::backend::Cpu;

// Two levels (16 and 8 pixels), one residual block each, no attention, gray 16x16 images.
using Net = pd::unet::TinyUNet;

// 64 images of a bright square at varying places on a dark ground, in [-1, 1].
pd::data::ImageDataset squares() {
  pd::data::ImageDataset d;
  d.count = 64, d.channels = 1, d.height = 16, d.width = 16;
  d.pixels.assign(static_cast<std::size_t>(d.count * 16 * 16), -1.0f);
  d.labels.assign(static_cast<std::size_t>(d.count), 0);
  for (std::int64_t i = 0; i < d.count; ++i)
    for (std::int64_t y = i % 8; y < i % 8 + 6; ++y)
      for (std::int64_t x = i / 8; x < i / 8 + 6; ++x) d.pixels[static_cast<std::size_t>((i * 16 + y) * 16 + x)] = 1.0f;
  return d;
}

int main() try {
  const pd::schedule::Linear<1000> schedule;
  const auto partition =
      pd::group::FlopsIntervalGrouper<pd::difficulty::SnrFlops>{3, pd::difficulty::SnrFlops{0.5}}.group(schedule);
  const auto data = squares();

  pd::model::Progressive<Net> base(Net(Net::default_widths(), Net::default_config()), schedule.size());
  pd::Generator gen(/*seed=*/1);
  base.initialize(gen);

  pd::train::TrainOptions options;
  options.steps = 2;
  options.batch_size = 8;
  options.progress.mode = pd::train::ProgressOptions::Mode::Off;
  const auto stage1 = pd::train::train_stage1(base, schedule, data, options);
  pd::train::TrainReport stage2;
  auto grouped = pd::train::train_stage2(base, partition, schedule, data, options, {}, &stage2);

  const auto sampler = pd::sample::Ddim::from_schedule(schedule, /*steps=*/5);
  const pd::Shape shape{4, 1, 16, 16};
  const auto images = sampler.sample(grouped, shape, /*seed=*/7).to_host();

  // The checkpoint holds the weights and a description (groups, widths) that loading checks
  // against the model it loads into: here a fresh copy of the base into the same groups.
  const char* path = "first_program.safetensors";
  pd::io::save_checkpoint(path, grouped, grouped.describe(), {});
  auto loaded = pd::train::copy_into_groups(base, partition, /*seed=*/0);
  pd::io::load_checkpoint(path, loaded, loaded.describe());
  const bool same = sampler.sample(loaded, shape, /*seed=*/7).to_host() == images;

  bool finite = std::isfinite(stage1.steps.back().loss) && std::isfinite(stage2.steps.back().loss);
  for (float v : images) finite = finite && std::isfinite(v);
  std::printf("%lld groups; stage 1 loss %.4f, stage 2 loss %.4f; %zu sampled pixel values%s; saved to %s%s\n",
              static_cast<long long>(grouped.group_count()), stage1.steps.back().loss, stage2.steps.back().loss,
              images.size(), finite ? "" : ": NOT FINITE", path, same ? "" : ", NOT REPRODUCED after loading");
  return finite && same ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}

// Progressive training and sampling on the GPU: the same model::Progressive, train::Trainer
// stages and DDIM sampler as on the CPU, with the back end as the only change (the `Device`
// alias below; with backend::Cpu this file is the CPU program). On 16x16 images of one bright
// square on a dark background it
//   1. trains a small U-Net on every timestep (stage 1 of step-adaptive training),
//   2. copies it into two timestep groups, [0, 500) and [500, 1000), and fine-tunes each copy
//      on its own timesteps (stage 2),
//   3. draws samples with DDIM, each step routed to its group's denoiser,
// and checks that the stage-1 loss fell, the stage-2 losses are finite and no larger than the
// stage-1 start, and the samples are finite. Without a GPU it says so and exits with 77
// (ctest's "skipped").
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include "progdiff/backend/cuda/cuda.cuh"
#include "progdiff/model/progressive.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/unet/unet.hpp"

using namespace progdiff;

// The one line that picks the device: backend::Cpu runs the same program on the CPU.
using Device = backend::Cuda;

using Net = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                       unet::ImageChannels<1>, unet::BaseChannels<32>, unet::GroupNormGroups<8>,
                       unet::DropoutPercent<0>, unet::OnBackend<Device>>;
using Schedule = schedule::Linear<1000>;

// `count` 16x16 images in [-1, 1], each a 5x5 square at a random place.
data::ImageDataset squares(std::int64_t count, Generator& gen) {
  data::ImageDataset d;
  d.count = count, d.channels = 1, d.height = 16, d.width = 16;
  d.pixels.assign(static_cast<std::size_t>(count * 256), -1.0f);
  d.labels.assign(static_cast<std::size_t>(count), 0);
  for (std::int64_t i = 0; i < count; ++i) {
    const auto r = static_cast<std::int64_t>(gen.below(12)), c = static_cast<std::int64_t>(gen.below(12));
    for (std::int64_t y = r; y < r + 5; ++y)
      for (std::int64_t x = c; x < c + 5; ++x) d.pixels[static_cast<std::size_t>(i * 256 + y * 16 + x)] = 1.0f;
  }
  return d;
}

train::TrainOptions options(std::int64_t steps) {
  train::TrainOptions o;
  o.steps = steps;
  o.batch_size = 64;
  o.seed = 3;
  o.lr.lr = 2e-4;
  o.lr.warmup_steps = 20;
  o.ema.decay = 0.99;
  o.progress.mode = train::ProgressOptions::Mode::Off;
  return o;
}

// Mean of the first and last `window` losses of a run, so one noisy batch does not decide a check.
struct Ends {
  double first = 0.0, last = 0.0;
};
Ends ends(const train::TrainReport& r, std::size_t window) {
  Ends e;
  for (std::size_t i = 0; i < window; ++i) {
    e.first += r.steps[i].loss / double(window);
    e.last += r.steps[r.steps.size() - 1 - i].loss / double(window);
  }
  return e;
}

int main() {
  if constexpr (requires { Device::device_count(); }) {
    if (Device::device_count() == 0) {
      std::printf("SKIPPED: this example needs a CUDA device and none is present.\n");
      return 77;
    }
  }
  try {
    const Schedule schedule;
    Generator data_gen(2);
    const data::ImageDataset data = squares(2048, data_gen);
    auto print = [](const char* stage) {
      return [stage](const train::StepInfo& s) {
        if (s.step % 50 == 0) std::printf("%s step %4lld  loss %.4f\n", stage, static_cast<long long>(s.step), s.loss);
      };
    };

    // Stage 1: one denoiser for all 1000 timesteps.
    Generator init(1);
    Net net;
    net.initialize(init);
    model::Progressive<Net> base(std::move(net), Schedule::steps);
    const train::TrainReport stage1 = train::train_stage1(base, schedule, data, options(300), print("stage 1"));
    const Ends e1 = ends(stage1, 20);

    // Stage 2: a copy per group, each fine-tuned on its own timesteps.
    train::TrainReport stage2;
    model::Progressive<Net> grouped = train::train_stage2(base, group::Partition{{0, 500, 1000}, {}}, schedule, data,
                                                          options(100), {}, &stage2, print("stage 2"));
    const Ends e2 = ends(stage2, 20);

    // DDIM on the grouped model: each step's samples go to the denoiser of their timestep's group.
    const auto samples =
        sample::Ddim::from_schedule(schedule, 50).sample<float, Device>(grouped, Shape{8, 1, 16, 16}, 5);
    const auto host = samples.to_host();
    bool finite = true;
    double mean = 0;
    for (float v : host) {
      finite = finite && std::isfinite(v);
      mean += v / double(host.size());
    }
    std::printf("stage 1 loss: first 20 steps %.4f, last 20 steps %.4f\n", e1.first, e1.last);
    std::printf("stage 2 loss (mean of 2 groups): first 20 steps %.4f, last 20 steps %.4f\n", e2.first, e2.last);
    std::printf("8 DDIM samples from %lld groups, mean pixel %.3f\n", static_cast<long long>(grouped.group_count()),
                mean);
    const bool ok = finite && e1.last < 0.7 * e1.first && std::isfinite(e2.last) && e2.last < e1.first;
    std::printf(ok ? "ok\n"
                   : "FAILED: the stage-1 loss did not fall by 30%%, a stage-2 loss is above the stage-1 start, or "
                     "a sample is not finite\n");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("FAILED with an exception: %s\n", e.what());
    return 1;
  }
}

// Times a small preset's (unet/small_presets.hpp) progressive model through the library's own
// entry points, train::train_stage1 and DDIM, and prints JSON:
//   progdiff_preset_timing <tiny|small> <train|ddim> <batch> <repetitions> [ddim_steps]
// train: seconds of each stage-1 step after the first (one run of 1 + repetitions steps);
// ddim:  seconds of each deterministic DDIM run of ddim_steps steps (default 20), after one
//        warm-up run.
// Built twice, linked to progdiff::precompiled (the preset's code compiled in the component) and
// header-only, to show that the component costs no speed (docs/build.md).
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/unet/small_presets.hpp"
#include "progdiff/unet/unet.hpp"

namespace {

namespace pd = progdiff;
using Clock = std::chrono::steady_clock;

template <class Net>
int run(const std::string& what, std::int64_t batch, int repetitions, std::int64_t steps) {
  const pd::schedule::Linear<1000> schedule;
  pd::model::Progressive<Net> model(Net(Net::default_widths(), Net::default_config()), schedule.size());
  pd::Generator gen(1);
  model.initialize(gen);
  const auto shape = Net().input_shape(batch);
  std::vector<double> seconds;
  if (what == "train") {
    pd::data::ImageDataset data;
    data.count = 4 * batch, data.channels = shape[1], data.height = shape[2], data.width = shape[3];
    data.pixels.resize(static_cast<std::size_t>(data.count * shape[1] * shape[2] * shape[3]));
    for (std::size_t i = 0; i < data.pixels.size(); ++i) data.pixels[i] = static_cast<float>(i % 7) / 3.0f - 1.0f;
    data.labels.assign(static_cast<std::size_t>(data.count), 0);
    pd::train::TrainOptions options;
    options.steps = 1 + repetitions;
    options.batch_size = batch;
    options.progress.mode = pd::train::ProgressOptions::Mode::Off;
    auto last = Clock::now();
    pd::train::train_stage1(model, schedule, data, options, [&](const pd::train::StepInfo& s) {
      const auto now = Clock::now();
      if (s.step > 1) seconds.push_back(std::chrono::duration<double>(now - last).count());
      last = now;
    });
  } else if (what == "ddim") {
    const auto sampler = pd::sample::Ddim::from_schedule(schedule, steps);
    sampler.sample(model, shape, 1);
    for (int r = 0; r < repetitions; ++r) {
      const auto t0 = Clock::now();
      sampler.sample(model, shape, static_cast<std::uint64_t>(r + 2));
      seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  } else {
    std::fprintf(stderr, "unknown measurement '%s' (train | ddim)\n", what.c_str());
    return 2;
  }
  std::printf("{\"what\": \"%s\", \"batch\": %lld, \"seconds\": [", what.c_str(), static_cast<long long>(batch));
  for (std::size_t i = 0; i < seconds.size(); ++i) std::printf("%s%.6f", i ? ", " : "", seconds[i]);
  std::printf("]}\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s <tiny|small> <train|ddim> <batch> <repetitions> [ddim_steps]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1], what = argv[2];
  const std::int64_t batch = std::stoll(argv[3]), steps = argc == 6 ? std::stoll(argv[5]) : 20;
  const int repetitions = std::stoi(argv[4]);
  if (model == "tiny") return run<pd::unet::TinyUNet>(what, batch, repetitions, steps);
  if (model == "small") return run<pd::unet::SmallUNet>(what, batch, repetitions, steps);
  std::fprintf(stderr, "unknown model '%s' (tiny | small)\n", model.c_str());
  return 2;
}

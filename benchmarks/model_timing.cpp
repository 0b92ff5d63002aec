// Times one end-to-end configuration of a U-Net and prints JSON, for compare_pytorch_model.py:
//   progdiff_model_timing <model> <what> <batch> <repetitions> [ddim_steps]
// model: default (1x32x32, 32 channels, 1-2-2, one ResBlock per level, no attention, 8 groups) |
//        cifar (3x32x32, 64 channels, 1-2-2, two ResBlocks per level, attention at 16x16).
// what:  train (forward, epsilon MSE, backward, AdamW; seconds per step) |
//        ddim (deterministic DDIM of ddim_steps steps, default 100; seconds per sampling run) |
//        forward (one forward pass without backward; seconds per call).
// One warm-up call precedes the timed ones. For train the JSON also holds the tensor bytes held
// before a step (parameters, gradients, AdamW moments, the data batch), the peak during one, and
// what is held again after it; max_rss_kb is the process's peak resident set.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "model_bench.hpp"

namespace {

namespace pd = progdiff;
namespace bench = progdiff::bench;

template <class F>
double seconds_of(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

long max_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

void print_list(const char* key, const std::vector<double>& v) {
  std::printf("\"%s\": [", key);
  for (std::size_t i = 0; i < v.size(); ++i) std::printf("%s%.6f", i ? ", " : "", v[i]);
  std::printf("]");
}

template <class Net>
int run(const std::string& model, const std::string& what, std::int64_t batch, int repetitions, std::int64_t steps) {
  std::vector<double> seconds;
  std::int64_t params = 0;
  double gflop = 0;
  std::size_t before = 0, peak = 0, after = 0;
  if (what == "train") {
    bench::TrainingStep<Net> step(batch);
    params = step.net().parameter_count();
    gflop = static_cast<double>(step.net().flops(step.net().input_shape(1))) / 1e9;
    step.run();  // warm-up: AdamW's moments appear, the block cache fills
    for (int r = 0; r < repetitions; ++r) {
      before = pd::backend::cpu::memory_stats().live_bytes;
      pd::backend::cpu::reset_peak_memory();
      seconds.push_back(seconds_of([&] { step.run(); }));
      const auto s = pd::backend::cpu::memory_stats();
      peak = s.peak_bytes;
      after = s.live_bytes;
    }
  } else if (what == "ddim" || what == "forward") {
    bench::DdimSampling<Net> sampling(steps);
    params = sampling.net().parameter_count();
    gflop = static_cast<double>(sampling.net().flops(sampling.net().input_shape(1))) / 1e9;
    if (what == "ddim") {
      bench::DdimSampling<Net> warm(2);
      warm.run(batch);
      for (int r = 0; r < repetitions; ++r) seconds.push_back(seconds_of([&] { sampling.run(batch); }));
    } else {
      const bench::TensorF x = bench::TensorF::full(sampling.net().input_shape(batch), 0.5f);
      std::vector<double> t(static_cast<std::size_t>(batch), 500.0);
      sampling.net().forward(x, t);
      for (int r = 0; r <= repetitions; ++r) {
        const double s = seconds_of([&] { sampling.net().forward(x, t); });
        if (r > 0) seconds.push_back(s);
      }
    }
  } else {
    std::fprintf(stderr, "unknown measurement '%s' (train | ddim | forward)\n", what.c_str());
    return 2;
  }
  std::printf("{\"model\": \"%s\", \"what\": \"%s\", \"batch\": %lld, \"ddim_steps\": %lld, \"parameters\": %lld, ",
              model.c_str(), what.c_str(), static_cast<long long>(batch), static_cast<long long>(steps),
              static_cast<long long>(params));
  std::printf("\"gflop_per_image\": %.6f, ", gflop);
  print_list("seconds", seconds);
  if (what == "train")
    std::printf(", \"tensor_bytes_before\": %zu, \"tensor_bytes_peak\": %zu, \"tensor_bytes_after\": %zu", before, peak,
                after);
  std::printf(", \"max_rss_kb\": %ld}\n", max_rss_kb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s <default|cifar> <train|ddim|forward> <batch> <repetitions> [ddim_steps]\n",
                 argv[0]);
    return 2;
  }
  const std::string model = argv[1], what = argv[2];
  const std::int64_t batch = std::atoll(argv[3]);
  const int repetitions = std::atoi(argv[4]);
  const std::int64_t steps = argc == 6 ? std::atoll(argv[5]) : 100;
  if (batch < 1 || repetitions < 1 || steps < 1) {
    std::fprintf(stderr, "batch, repetitions and ddim_steps must be positive\n");
    return 2;
  }
  if (model == "default") return run<bench::DefaultNet>(model, what, batch, repetitions, steps);
  if (model == "cifar") return run<bench::CifarNet>(model, what, batch, repetitions, steps);
  std::fprintf(stderr, "unknown model '%s' (default | cifar)\n", model.c_str());
  return 2;
}

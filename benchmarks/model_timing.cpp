// Times one end-to-end configuration of a U-Net and prints JSON, for compare_pytorch_model.py:
//   progdiff_model_timing [--precision fp32|bf16|both] <model> <what> <batch> <repetitions> [ddim_steps]
// model: default (1x32x32, 32 channels, 1-2-2, one ResBlock per level, no attention, 8 groups) |
//        cifar (3x32x32, 64 channels, 1-2-2, two ResBlocks per level, attention at 16x16).
// what:  train (forward, epsilon MSE, backward, AdamW; seconds per step) |
//        ddim (deterministic DDIM of ddim_steps steps, default 100; seconds per sampling run) |
//        forward (one forward pass without backward; seconds per call).
// --precision: the convolutions' products in fp32 (the default) or bf16 mixed precision
// (backend/cpu/matmul_precision.hpp; needs AVX512_BF16); "both" times the two alternately in one
// process, fp32 then bf16 in each repetition, and adds "seconds_bf16" and the ratio of the
// medians, bf16 / fp32, to the JSON.
// One warm-up call per precision precedes the timed ones. For train the JSON also holds the
// tensor bytes held before a step (parameters, gradients, AdamW moments, the data batch), the
// peak during one, and what is held again after it; max_rss_kb is the process's peak resident set.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "model_bench.hpp"
#include "progdiff/backend/cpu/matmul_precision.hpp"

namespace {

namespace pd = progdiff;
namespace bench = progdiff::bench;
namespace cpu = progdiff::backend::cpu;

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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Calls timed(mode) for every precision of `modes` in turn, `repetitions` times, after one
/// untimed call per precision; seconds[mode index] collects the times.
template <class F>
std::vector<std::vector<double>> alternate(const std::vector<cpu::MatmulPrecision>& modes, int repetitions, F&& timed) {
  std::vector<std::vector<double>> seconds(modes.size());
  for (const auto mode : modes) {
    cpu::set_matmul_precision(mode);
    timed(false);
  }
  for (int r = 0; r < repetitions; ++r)
    for (std::size_t m = 0; m < modes.size(); ++m) {
      cpu::set_matmul_precision(modes[m]);
      seconds[m].push_back(timed(true));
    }
  cpu::set_matmul_precision(cpu::MatmulPrecision::fp32);
  return seconds;
}

template <class Net>
int run(const std::string& model, const std::string& what, std::int64_t batch, int repetitions, std::int64_t steps,
        const std::vector<cpu::MatmulPrecision>& modes) {
  std::vector<std::vector<double>> seconds;
  std::int64_t params = 0;
  double gflop = 0;
  std::size_t before = 0, peak = 0, after = 0;
  if (what == "train") {
    bench::TrainingStep<Net> step(batch);
    params = step.net().parameter_count();
    gflop = static_cast<double>(step.net().flops(step.net().input_shape(1))) / 1e9;
    // The warm-up calls: AdamW's moments appear, the block cache fills.
    seconds = alternate(modes, repetitions, [&](bool) {
      before = pd::backend::cpu::memory_stats().live_bytes;
      pd::backend::cpu::reset_peak_memory();
      const double s = seconds_of([&] { step.run(); });
      const auto stats = pd::backend::cpu::memory_stats();
      peak = stats.peak_bytes;
      after = stats.live_bytes;
      return s;
    });
  } else if (what == "ddim" || what == "forward") {
    bench::DdimSampling<Net> sampling(steps);
    params = sampling.net().parameter_count();
    gflop = static_cast<double>(sampling.net().flops(sampling.net().input_shape(1))) / 1e9;
    if (what == "ddim") {
      bench::DdimSampling<Net> warm(2);
      seconds = alternate(modes, repetitions, [&](bool timed) {
        if (!timed) return seconds_of([&] { warm.run(batch); });
        return seconds_of([&] { sampling.run(batch); });
      });
    } else {
      const bench::TensorF x = bench::TensorF::full(sampling.net().input_shape(batch), 0.5f);
      std::vector<double> t(static_cast<std::size_t>(batch), 500.0);
      seconds = alternate(modes, repetitions, [&](bool) { return seconds_of([&] { sampling.net().forward(x, t); }); });
    }
  } else {
    std::fprintf(stderr, "unknown measurement '%s' (train | ddim | forward)\n", what.c_str());
    return 2;
  }
  std::printf("{\"model\": \"%s\", \"what\": \"%s\", \"batch\": %lld, \"ddim_steps\": %lld, \"parameters\": %lld, ",
              model.c_str(), what.c_str(), static_cast<long long>(batch), static_cast<long long>(steps),
              static_cast<long long>(params));
  std::printf("\"gflop_per_image\": %.6f, \"precision\": \"%s\", ", gflop,
              modes.size() == 2 ? "both" : cpu::to_string(modes[0]));
  print_list("seconds", seconds[0]);
  if (modes.size() == 2) {
    std::printf(", ");
    print_list("seconds_bf16", seconds[1]);
    std::printf(", \"median_fp32\": %.6f, \"median_bf16\": %.6f, \"bf16_over_fp32\": %.4f", median(seconds[0]),
                median(seconds[1]), median(seconds[1]) / median(seconds[0]));
  }
  if (what == "train")
    std::printf(", \"tensor_bytes_before\": %zu, \"tensor_bytes_peak\": %zu, \"tensor_bytes_after\": %zu", before, peak,
                after);
  std::printf(", \"max_rss_kb\": %ld}\n", max_rss_kb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<cpu::MatmulPrecision> modes{cpu::MatmulPrecision::fp32};
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--precision") == 0 && i + 1 < argc) {
      const std::string p = argv[++i];
      modes = p == "both" ? std::vector{cpu::MatmulPrecision::fp32, cpu::MatmulPrecision::bf16}
                          : std::vector{p == "bf16" ? cpu::MatmulPrecision::bf16 : cpu::MatmulPrecision::fp32};
      if (p != "both" && p != "bf16" && p != "fp32") {
        std::fprintf(stderr, "unknown precision '%s' (fp32 | bf16 | both)\n", p.c_str());
        return 2;
      }
    } else {
      args.emplace_back(argv[i]);
    }
  }
  if (args.size() != 4 && args.size() != 5) {
    std::fprintf(stderr,
                 "usage: %s [--precision fp32|bf16|both] <default|cifar> <train|ddim|forward> <batch> <repetitions> "
                 "[ddim_steps]\n",
                 argv[0]);
    return 2;
  }
  const std::string model = args[0], what = args[1];
  const std::int64_t batch = std::atoll(args[2].c_str());
  const int repetitions = std::atoi(args[3].c_str());
  const std::int64_t steps = args.size() == 5 ? std::atoll(args[4].c_str()) : 100;
  if (batch < 1 || repetitions < 1 || steps < 1) {
    std::fprintf(stderr, "batch, repetitions and ddim_steps must be positive\n");
    return 2;
  }
  try {
    for (const auto mode : modes) cpu::require_matmul_precision(mode, cpu::identify_cpu());
    if (model == "default") return run<bench::DefaultNet>(model, what, batch, repetitions, steps, modes);
    if (model == "cifar") return run<bench::CifarNet>(model, what, batch, repetitions, steps, modes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "unknown model '%s' (default | cifar)\n", model.c_str());
  return 2;
}

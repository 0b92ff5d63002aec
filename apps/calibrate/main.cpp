// Measures this machine's CPU kernel choices and keeps them for every later progdiff process:
// from how many channels Winograd F(2x2, 3x3) beats the direct convolution in the forward and in
// the weight gradient, and the Winograd block size (backend/cpu/kernel_choices.hpp says where they are kept and how
// they are read). It prints what the CPU is, its measured FMA peak (and AVX512_BF16 dot-product peak, which says
// whether bf16 mixed precision can pay here), every timing and the choices.
//
//   progdiff_calibrate               # measure and write the file for this CPU
//   progdiff_calibrate --dry-run     # measure and print only
//
// Run it on a quiet machine: a timing taken while other work shares the cores can tip a choice.
// It takes about a minute on 2 cores.
#include <omp.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/run_app.hpp"
#include "progdiff/backend/cpu/conv_calibration.hpp"
#include "progdiff/backend/cpu/fma_throughput.hpp"

namespace {

namespace cpu = progdiff::backend::cpu;
namespace fs = std::filesystem;

struct Flags {
  bool dry_run = false;
  fs::path out;  // empty: cpu::kernel_choices_path
  int repetitions = 7;
  std::int64_t batch = 32;
};

Flags parse(CLI::App& app, int argc, char** argv) {
  Flags f;
  app.add_flag("--dry-run", f.dry_run, "measure and print, write nothing");
  app.add_option("--out", f.out, "the file to write (default: where every progdiff process looks for it)");
  app.add_option("--repetitions", f.repetitions, "timed runs per shape and kernel (the median counts)")
      ->check(CLI::Range(1, 101))
      ->capture_default_str();
  app.add_option("--batch", f.batch, "images per timed convolution")->check(CLI::Range(1, 1024))->capture_default_str();
  app.parse(argc, argv);
  return f;
}

std::string mib(std::int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f MiB", double(bytes) / (1024.0 * 1024.0));
  return text;
}

std::string min_channels_text(int channels) {
  return channels == cpu::kWinogradNever ? "never" : std::to_string(channels);
}

/// The share of the machine's CPU time that other processes used over the last half second
/// (/proc/stat), before this program starts measuring; negative where /proc/stat is unreadable.
/// One table of `runs`: the direct and the Winograd kernel of `what` at every shape measured.
void print_timings(const char* what, const std::vector<cpu::ConvTiming>& runs, const Flags& f) {
  std::printf("\n3x3 convolution %s, batch %lld, median ms of %d:\n\n", what, static_cast<long long>(f.batch),
              f.repetitions);
  std::printf("| channels | size | direct | Winograd | Winograd / direct |\n|---|---|---|---|---|\n");
  for (const cpu::ConvTiming& t : runs)
    std::printf("| %lld | %lldx%lld | %.3f | %.3f | %.2f |\n", static_cast<long long>(t.channels),
                static_cast<long long>(t.size), static_cast<long long>(t.size), t.direct_ms, t.winograd_ms,
                t.winograd_ms / t.direct_ms);
}

/// "name 8x8 N; 16x16 N; 32x32 N;" for a crossover by image size.
void print_crossovers(const char* name, const std::array<int, cpu::KernelChoices::kSizeClasses>& counts) {
  std::printf("%s", name);
  for (int size = 0; size < cpu::KernelChoices::kSizeClasses; ++size)
    std::printf(" %s %s;", cpu::KernelChoices::kSizeClassNames[size],
                min_channels_text(counts[std::size_t(size)]).c_str());
}

double busy_share() {
  const auto sample = [](double& busy, double& total) {
    std::ifstream in("/proc/stat");
    std::string cpu;
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal)) return false;
    busy = user + nice + system + irq + softirq + steal;
    total = busy + idle + iowait;
    return true;
  };
  double busy0 = 0, total0 = 0, busy1 = 0, total1 = 0;
  if (!sample(busy0, total0)) return -1;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  if (!sample(busy1, total1) || total1 <= total0) return -1;
  return (busy1 - busy0) / (total1 - total0);
}

int calibrate(const Flags& f) {
  const cpu::CpuIdentity id = cpu::identify_cpu();
  std::printf("CPU: %s (%s, family %d, model %d)\n", id.brand.c_str(), id.vendor.c_str(), id.family, id.model);
  std::printf("caches per core: L1d %s, L2 %s; L3 %s shared\n", mib(id.l1d_bytes).c_str(), mib(id.l2_bytes).c_str(),
              mib(id.l3_bytes).c_str());
  std::printf("AVX-512: %s, AVX512_BF16: %s; threads: %d\n", id.avx512f ? "yes" : "no", id.avx512_bf16 ? "yes" : "no",
              omp_get_max_threads());
  // Before any measuring of ours, so that only other processes count.
  const double busy = busy_share();
  const double fma_peak = cpu::measure_fma_gflops();
  std::printf("measured FP32 FMA peak: %.0f GFLOP/s\n", fma_peak);
  if (const double bf16_peak = cpu::measure_bf16_dot_gflops(); bf16_peak > 0 && fma_peak > 0)
    std::printf(
        "measured bf16 dot-product (vdpbf16ps) peak: %.0f GFLOP/s, %.2fx the FMA's: bf16 mixed precision "
        "(--bf16) %s\n",
        bf16_peak, bf16_peak / fma_peak,
        bf16_peak > 1.2 * fma_peak ? "may pay here" : "does not pay here (time it: docs/performance.md)");
  if (busy > 0.2)
    std::printf("warning: other work used %.0f%% of the CPUs just now: timings may tip a choice\n", 100 * busy);

  cpu::CalibrationSettings settings;
  settings.repetitions = f.repetitions;
  settings.batch = f.batch;
  const cpu::ConvCalibration c = cpu::calibrate_convolutions(settings);
  if (c.threshold_runs.empty()) {
    std::printf("this build has neither AVX-512 nor AVX2 kernels: nothing to choose, nothing written\n");
    return 0;
  }
  // On an AVX2 build the direct kernels are the implicit GEMMs, and the Winograd block is not measured.
  print_timings("forward", c.threshold_runs, f);
  print_timings("weight gradient", c.weight_gradient_runs, f);
  if (!c.block_runs.empty()) {
    std::printf("\nWinograd block (64 ch 32x32 + 128 ch 16x16 + 256 ch 8x8), median ms:\n\n");
    std::printf("| block | ms |\n|---|---|\n");
    for (const cpu::BlockTiming& b : c.block_runs)
      std::printf("| %s | %.3f |\n", mib(b.block_bytes).c_str(), b.total_ms);
  }
  std::printf("\nchoices: ");
  print_crossovers("winograd_min_channels", c.choices.winograd_min_channels);
  print_crossovers(" winograd_weight_gradient_min_channels", c.choices.weight_gradient_winograd_min_channels);
  std::printf(" winograd_block_bytes %lld (%s); winograd_tile %d (the largest AVX2 Winograd tile, not measured)\n",
              static_cast<long long>(c.choices.winograd_block_bytes), mib(c.choices.winograd_block_bytes).c_str(),
              c.choices.winograd_tile);
  if (f.dry_run) return 0;

  const fs::path path = f.out.empty() ? cpu::kernel_choices_path(id) : f.out;
  if (path.empty())
    throw progdiff::ConfigError(
        "no place to keep the choices: set HOME, XDG_CACHE_HOME or PROGDIFF_KERNEL_CHOICES, or pass --out");
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  cpu::write_kernel_choices(path, id, c.choices,
                            std::string("measured by progdiff_calibrate on ") + date + " with " +
                                std::to_string(omp_get_max_threads()) + " threads");
  std::printf("written: %s\n", path.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"progdiff_calibrate: measure this machine's CPU kernel choices and keep them for later runs"};
  return apps::run_app(app, argc, argv, parse, calibrate);
}

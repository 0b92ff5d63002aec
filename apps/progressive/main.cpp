// The main job: a progressive diffusion model on Fashion-MNIST, end to end.
//
//   1. stage 1: a small U-Net learns every timestep of a 1000-step DDPM schedule;
//   2. the timesteps are split into groups by FLOPs intervals (eqs. 8-10 of the step-adaptive
//      training paper; --grouping chooses another grouper);
//   3. stage 2: each group gets a copy of the base, fine-tuned on its own timesteps
//      (--variant experts; --variant unified keeps one net, --variant multi-stage trains a
//      shared-encoder model with one decoder per group instead);
//   4. DDIM samples a grid (samples.png) and the images for the Frechet distance in the feature
//      space of a Fashion-MNIST classifier; the denoising loss of each group is measured on the
//      test split; report.md collects FLOPs, parameters, losses, the distance and wall times, and
//      result.json the same numbers for programs that compare runs.
// --base-from DIR replaces stage 1 by a diffusers UNet2DModel trained elsewhere (docs/interop.md).
// The last --validation-images training images are held out of training; whatever chooses (TDC's
// pruning) is scored on them. The test split is sealed until the evaluation.
//
// Every stage writes a resumable checkpoint, a CSV log and a loss plot to the output directory;
// a second run with the same flags picks up where the first stopped. `--help` lists the flags.
// The program checks its own results: finite losses, samples in range, a grid that decodes,
// a Frechet distance computed; exit status 1 on a failure, 2 on bad flags, 77 (a skip) when
// Fashion-MNIST is not installed.
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>

#include "common/run_app.hpp"
#include "flags.hpp"
#include "grouping.hpp"
#include "job.hpp"
#include "progdiff/data/fashion_mnist.hpp"
#include "progdiff/data/pixel_statistics.hpp"
#include "progdiff/data/validation_split.hpp"

namespace {

using namespace job;
namespace fs = std::filesystem;

constexpr int kSkipped = 77;  // ctest's SKIP_RETURN_CODE for the examples

/// The job of `Scale` (its nets, recipe and blocks): its schedule, the timestep groups, the
/// variant.
template <class Scale>
void run_scale(const Options& o, const pd::data::ImageDataset& train, const pd::data::ImageDataset& validation,
               SealedTestSplit& test, Report& report) {
  using Recipe = typename Scale::Recipe;
  const typename Recipe::Schedule schedule = Recipe::schedule();
  const pd::group::Partition partition = timed(report, std::string("grouping (") + grouping_name(o.grouping) + ")",
                                               [&] { return make_partition(o, schedule, train); });
  if (partition.groups() != o.groups)
    report.notes.push_back(std::string("the ") + grouping_name(o.grouping) + " grouper gave " +
                           std::to_string(partition.groups()) + " groups for --groups " + std::to_string(o.groups));
  report.partition = partition;
  std::printf("%lld training images, %lld held out for validation, %lld test images; groups (timesteps):",
              static_cast<long long>(train.count), static_cast<long long>(validation.count),
              static_cast<long long>(test.count()));
  for (std::int64_t k = 0; k < partition.groups(); ++k)
    std::printf(" [%lld, %lld)", static_cast<long long>(partition.begin(k)), static_cast<long long>(partition.end(k)));
  std::printf("\n");
  Job<Scale>{o, schedule, partition, train, validation, test, report}.run();
}

/// The small scale on the CPU with the recipe and blocks of the options.
template <class R>
void run_small_recipe(const Options& o, const pd::data::ImageDataset& train, const pd::data::ImageDataset& validation,
                      SealedTestSplit& test, Report& report) {
  if (o.arch == Arch::Ddpmpp)
    run_scale<SmallCpu<R, Arch::Ddpmpp>>(o, train, validation, test, report);
  else
    run_scale<SmallCpu<R, Arch::Ddpm>>(o, train, validation, test, report);
}

/// The job of the chosen scale, recipe and blocks on back end `B`.
template <class B>
void run_on(bool paper_scale, const Options& o, const pd::data::ImageDataset& train,
            const pd::data::ImageDataset& validation, SealedTestSplit& test, Report& report) {
  if (paper_scale) {
#ifdef PROGDIFF_APPS_SMALL_SCALE_ONLY
    throw pd::ConfigError(
        "--paper-scale: this build has the small scale only (a sanitized test build, or a CUDA build "
        "configured with PROGDIFF_CUDA_APPS_PAPER_SCALE=OFF)");
#else
    run_scale<PaperScaleOn<B>>(o, train, validation, test, report);
#endif
    return;
  }
  if (o.objective == ObjectiveKind::Simple && o.arch == Arch::Ddpm)
    return run_scale<SmallScaleOn<B>>(o, train, validation, test, report);
  if constexpr (std::is_same_v<B, Cpu>) {  // the options refuse the other recipes on CUDA
#ifdef PROGDIFF_APPS_DEFAULT_RECIPE_ONLY
    throw pd::ConfigError(std::string("--objective ") + objective_name(o.objective) + " --arch " + arch_name(o.arch) +
                          ": this build has the default recipe only (a sanitized test build)");
#else
    switch (o.objective) {
      case ObjectiveKind::Simple:
        return run_small_recipe<SimpleRecipe>(o, train, validation, test, report);
      case ObjectiveKind::Hybrid:
        return run_small_recipe<HybridRecipe>(o, train, validation, test, report);
      case ObjectiveKind::Edm:
        return run_small_recipe<EdmRecipe>(o, train, validation, test, report);
    }
#endif
  }
}

int run(const Options& o, const std::string& command) {
  const auto start = Clock::now();
  if (!device_present(o.device)) return kSkipped;
  // A base imported from diffusers (--base-from) is checked before anything runs: its structure
  // picks the scale, or the job says which keys neither scale can hold.
  const bool paper_scale = o.base_from.empty() ? o.paper_scale : base_is_paper_scale(o.base_from);
  if (!o.base_from.empty())
    std::printf("--base-from %s: the %s scale's structure\n", o.base_from.string().c_str(),
                paper_scale ? "paper" : "small");
  for (const auto& name : {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"})
    if (!fs::exists(o.data / name)) {
      std::fprintf(stderr,
                   "skipped: %s is missing (Debian installs Fashion-MNIST with: apt-get install "
                   "dataset-fashion-mnist)\n",
                   (o.data / name).string().c_str());
      return kSkipped;
    }
  fs::create_directories(o.out);
  Report report;
  report.command = command;
  report.options = o;

  const auto [split, test_images] = timed(report, "loading Fashion-MNIST", [&] {
    // The last --validation-images training images are held out of training: they score every
    // choice. The test split is sealed until the evaluation (test_split.hpp).
    auto tr = pd::data::split_validation(pd::data::load_fashion_mnist(pd::data::Split::Train, o.data, o.train_images),
                                         o.validation_images);
    auto te = pd::data::load_fashion_mnist(pd::data::Split::Test, o.data, o.test_images);
    return std::pair{std::move(tr), std::move(te)};
  });
  SealedTestSplit test(test_images);

  // --sigma-data data | rms: EDM's sigma_data is the spread of the images trained on, as they are fed.
  Options resolved = o;
  if (o.objective == ObjectiveKind::Edm && o.sigma_data_source != SigmaDataSource::Given) {
    const pd::data::PixelStatistics spread = pd::data::pixel_standard_deviation(split.fit);
    resolved.sigma_data =
        o.sigma_data_source == SigmaDataSource::RootMeanSquare ? spread.root_mean_square : spread.standard_deviation;
    report.options = resolved;
    std::printf("--sigma-data %s: %.6f, the %s of the %lld training images' pixels (mean %.6f)\n",
                name_in(kSigmaDataSourceNames, o.sigma_data_source), resolved.sigma_data,
                sigma_data_measure(o.sigma_data_source), static_cast<long long>(split.fit.count), spread.mean);
  }

  // --bf16 (checked against this CPU with the options): every CPU convolution from here on.
  if (o.bf16) pd::backend::cpu::set_matmul_precision(pd::backend::cpu::MatmulPrecision::bf16);
  if (o.device == Device::Cuda) {
#ifdef __CUDACC__
    run_on<pd::backend::Cuda>(paper_scale, resolved, split.fit, split.validation, test, report);
#endif
  } else {
    run_on<Cpu>(paper_scale, resolved, split.fit, split.validation, test, report);
  }

  report.total_seconds = seconds_since(start);
  const fs::path report_path = o.out / "report.md";
  write_report(report_path, report);
  // result.json marks a finished run (a --tdc-group run evaluates nothing and writes none).
  if (test.is_open()) write_result(o.out / "result.json", report);
  std::printf("wrote %s; total %.1f s\n", report_path.string().c_str(), report.total_seconds);
  if (report.comparison_failed) {
    std::fprintf(stderr, "error: the samples differ from %s by more than --tolerance\n",
                 o.compare_with.string().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription, "progdiff_progressive"};
  return apps::run_app(
      app, argc, argv, [](CLI::App& a, int n, char** v) { return parse_options(a, n, v); },
      [&](const Options& o) {
        std::string command = "progdiff_progressive";
        for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
        return run(o, command);
      });
}

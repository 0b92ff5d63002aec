// The TDC ablations at small scale on Fashion-MNIST: the comparisons of the Step-Adaptive
// Training paper's Table 3 (FLOPs schedules) and Tables 4 and 6 (pruning criteria at equal FLOPs).
//
//   1. stage 1: a small U-Net learns every timestep of a 1000-step DDPM schedule (16x16 images:
//      Fashion-MNIST padded to 32 and average-pooled 2x2);
//   2. for each FLOPs schedule (SNR-based eq. 8, constant, uni-increasing, uni-decreasing) the
//      timesteps are grouped (eqs. 9-10) and tdc::run_tdc prunes the base per group with the
//      proxy search and fine-tunes every group on its timesteps;
//   3. on the SNR schedule, the same is done with each pruning criterion (random, magnitude,
//      Taylor, Diff-Pruning, proxy) and without pruning; the proxy search and the criteria score
//      on the last --validation-images training images, held out of training, never on the
//      test split;
//   4. every model is measured on the test split: the denoising loss on five equal timestep bins
//      and its mean, the average FLOPs and parameters over timesteps against the base, and, with
//      a classifier (--classifier), the Fashion Frechet Distance of DDIM samples.
// The table goes to <docs>/tdc_results.md and a plot of the per-bin loss against the base to
// <docs>/tdc_results.png. Every run is resumable (stage 1 and each pipeline keep their
// checkpoints under --out). The program checks its own results: each group within its budget,
// pruned models cheaper than the base, finite losses; exit status 1 on a failure, 2 on bad flags,
// 77 when the data set is not installed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>

#include <CLI/CLI.hpp>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/data/data.hpp"
#include "progdiff/difficulty/ablation_curves.hpp"
#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/group/flops_interval.hpp"
#include "progdiff/group/uniform_split.hpp"
#include "progdiff/io/line_plot.hpp"
#include "progdiff/metrics/metrics.hpp"
#include "progdiff/prune/external_proxy.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/tdc/validation.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/unet/unet.hpp"

namespace {

namespace pd = progdiff;
namespace fs = std::filesystem;
using Cpu = pd::backend::Cpu;
using Schedule = pd::schedule::Linear<1000>;
using Net = pd::unet::UNet<pd::unet::Levels<1, 2>, pd::unet::ResBlocks<1>, pd::unet::AttentionAt<>,
                           pd::unet::ImageSize<16>, pd::unet::ImageChannels<1>, pd::unet::BaseChannels<32>,
                           pd::unet::GroupNormGroups<4>, pd::unet::DropoutPercent<0>>;
using Model = pd::model::Progressive<Net>;
using Clock = std::chrono::steady_clock;

struct Options {
  bool quick = false;
  std::int64_t groups = 4;     // N of eqs. 9-10
  double k = 0.5;              // minimum FLOPs ratio of eq. 8
  std::int64_t channels = 16;  // base width
  std::int64_t stage1_steps = 1000;
  std::int64_t finetune_steps = 60;  // per group
  std::int64_t batch = 32;
  std::int64_t train_images = 20000;      // validation included
  std::int64_t validation_images = 5000;  // the last of them: held out of training, they score the pruning
  std::int64_t test_images = 500;         // per-bin loss samples
  std::int64_t proxy_rounds = 5, proxy_candidates = 3;
  std::int64_t fid_samples = 500;  // used only with a classifier
  std::int64_t ddim_steps = 20;
  std::uint64_t seed = 0;
  int threads = 1;
  fs::path out = "tdc_study_run";
  fs::path docs;  // empty: the output directory
  fs::path data = pd::data::kFashionMnistDirectory;
  fs::path classifier;        // empty: no Frechet distance
  std::string proxy_command;  // empty: the built-in proxy search
};

const char* kDescription =
    "Trains a small U-Net on 16x16 Fashion-MNIST (stage 1), then builds progressive models by the TDC\n"
    "pipeline (prune per timestep group, fine-tune per group) under four FLOPs schedules and six\n"
    "pruning choices, and writes a results table and plot. Defaults shown are those of the\n"
    "configuration chosen (--quick or not).";

/// The defaults of the smoke-test configuration (--quick, wherever it stands; later flags apply).
void apply_quick(Options& o) {
  o.quick = true;
  o.groups = 3, o.channels = 8, o.stage1_steps = 30, o.finetune_steps = 6, o.batch = 8;
  o.train_images = 256, o.test_images = 16, o.proxy_rounds = 2, o.proxy_candidates = 2, o.fid_samples = 16;
  o.validation_images = 64;
  o.ddim_steps = 4;
}

/// CLI11's check that an integer is at least lo; --help says ">= lo".
CLI::Validator at_least(std::int64_t lo) {
  return CLI::Range(lo, std::numeric_limits<std::int64_t>::max()).description(">= " + std::to_string(lo));
}

/// The flags of `o` on `app`; `o` holds the configuration's defaults, which --help shows.
void add_flags(CLI::App& app, Options& o) {
  auto count = [&](const char* name, std::int64_t& field, std::int64_t lo, const char* what) {
    app.add_option(name, field, what)->check(at_least(lo))->capture_default_str();
  };
  app.add_flag("--quick", o.quick, "a smoke-test configuration (well under a minute)");
  count("--groups", o.groups, 1, "timestep groups");
  app.add_option("--k", o.k, "minimum FLOPs ratio of eq. 8, in (0, 1]")->capture_default_str();
  count("--channels", o.channels, 4, "base width of the U-Net, a multiple of 4");
  count("--stage1-steps", o.stage1_steps, 1, "base training steps");
  count("--finetune-steps", o.finetune_steps, 0, "fine-tuning steps per group");
  count("--batch", o.batch, 1, "batch size");
  count("--train-images", o.train_images, 1, "training images used, validation included");
  count("--validation-images", o.validation_images, 1,
        "the last N of them are held out of training and score the pruning schemes and criteria; the test "
        "split only gives the final numbers");
  app.add_option("--proxy-command", o.proxy_command,
                 "the proxy runs ask this shell command instead of the built-in search "
                 "(prune/external_proxy.hpp; tools/proxy/echo_proxy.py is an example)");
  count("--test-images", o.test_images, 2, "test images per loss bin");
  count("--proxy-rounds", o.proxy_rounds, 1, "rounds of the proxy search");
  count("--proxy-candidates", o.proxy_candidates, 1, "schemes per round");
  app.add_option("--classifier", o.classifier,
                 "a Fashion-MNIST classifier (metrics/); trained and saved there when missing (minutes); "
                 "enables the Frechet distance");
  count("--fid-samples", o.fid_samples, 2, "DDIM samples per model for the distance");
  count("--ddim-steps", o.ddim_steps, 1, "DDIM steps");
  app.add_option("--seed", o.seed, "seed of everything")
      ->check(CLI::Range(std::uint64_t{0}, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                  .description(">= 0"))
      ->capture_default_str();
  app.add_option("--threads", o.threads,
                 "OpenMP threads (1: these nets are too small to gain from more, and on a shared machine a "
                 "parallel region waits for descheduled threads)")
      ->check(at_least(1))
      ->capture_default_str();
  app.add_option("--out", o.out, "checkpoints and runs; reruns resume")->capture_default_str();
  app.add_option("--docs", o.docs, "where tdc_results.md and tdc_results.png go (default: --out)");
  app.add_option("--data", o.data, "Fashion-MNIST directory")->capture_default_str();
}

/// The options of argv. Throws CLI::ParseError for what CLI11 checks (--help included:
/// CLI::CallForHelp) and ConfigError, naming the flag, for the checks across flags.
Options parse(CLI::App& app, int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--quick") apply_quick(o);
  add_flags(app, o);
  app.parse(argc, argv);
  if (o.channels % 4 != 0) throw pd::ConfigError("--channels must be a multiple of 4");
  if (!(o.k > 0 && o.k <= 1)) throw pd::ConfigError("--k must lie in (0, 1]");
  if (o.validation_images >= o.train_images)
    throw pd::ConfigError("--validation-images must be below --train-images: the rest is trained on");
  if (o.docs.empty()) o.docs = o.out;
  return o;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a.empty() ? "unknown" : a + " " + b + " " + c;
}

// 32x32 images average-pooled 2x2 to 16x16.
pd::data::ImageDataset pooled(const pd::data::ImageDataset& in) {
  pd::data::ImageDataset out;
  out.count = in.count, out.channels = in.channels, out.height = in.height / 2, out.width = in.width / 2;
  out.labels = in.labels;
  for (std::int64_t i = 0; i < in.count * in.channels; ++i)
    for (std::int64_t y = 0; y < out.height; ++y)
      for (std::int64_t x = 0; x < out.width; ++x) {
        const float* p = in.pixels.data() + i * in.height * in.width + 2 * y * in.width + 2 * x;
        out.pixels.push_back(0.25f * (p[0] + p[1] + p[in.width] + p[in.width + 1]));
      }
  return out;
}

// 16x16 images [N, 1, 16, 16] to 32x32 by pixel repetition, for the 32x32 classifier.
pd::Tensor<float, Cpu> upsampled(const std::vector<float>& v, std::int64_t n) {
  std::vector<float> out(static_cast<std::size_t>(n * 1024));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t y = 0; y < 32; ++y)
      for (std::int64_t x = 0; x < 32; ++x)
        out[static_cast<std::size_t>(i * 1024 + y * 32 + x)] =
            v[static_cast<std::size_t>(i * 256 + (y / 2) * 16 + x / 2)];
  return pd::Tensor<float, Cpu>::from_host(pd::Shape{n, 1, 32, 32}, out);
}

struct Row {
  std::string table;  // "schedule" or "pruning"
  std::string name;
  double average_flops = 0.0, average_parameters = 0.0;
  std::vector<double> bin_loss;
  double mean_loss = 0.0;
  double frechet = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0.0;
  std::string group_flops;  // per group, in MFLOP
};

// Parameters averaged over timesteps, as the papers report them: sum_g |group g| / T * params_g.
double average_parameters(const Model& m) {
  double p = 0.0;
  for (std::int64_t g = 0; g < m.group_count(); ++g)
    p += static_cast<double>(m.parameter_count(g)) *
         static_cast<double>(m.partition().end(g) - m.partition().begin(g)) / static_cast<double>(m.partition().size());
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription, "progdiff_example_06_tdc_study"};
  Options o;
  try {
    o = parse(app, argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "error: %s (see --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  omp_set_num_threads(o.threads);
  const auto start = Clock::now();
  const std::string load_before = load_average();
  try {
    pd::data::ImageDataset train, validation, test;
    try {
      // The last validation_images training images score every choice; the test split is read
      // only for the numbers of the tables.
      auto split = pd::data::split_validation(
          pooled(pd::data::load_fashion_mnist(pd::data::Split::Train, o.data, o.train_images, 32)),
          o.validation_images);
      train = std::move(split.fit);
      validation = std::move(split.validation);
      test = pooled(pd::data::load_fashion_mnist(pd::data::Split::Test, o.data, 0, 32));
    } catch (const pd::IoError& e) {
      std::fprintf(stderr, "skipped: %s\n", e.what());
      return 77;
    }
    fs::create_directories(o.out);
    fs::create_directories(o.docs);
    const Schedule schedule;
    const pd::Shape image{1, 1, 16, 16};
    auto progress = pd::train::ProgressOptions{};
    progress.mode = pd::train::ProgressOptions::Mode::Lines;
    progress.every = o.quick ? 1000000 : 0;

    // Stage 1: the base on every timestep (resumed from its checkpoint), with its EMA weights.
    std::printf("== stage 1: %lld steps\n", static_cast<long long>(o.stage1_steps));
    std::fflush(stdout);
    const auto t1 = Clock::now();
    pd::Generator init(o.seed);
    Net net(Net::default_widths(o.channels), Net::default_config());
    net.initialize(init);
    Model base(std::move(net), Schedule::steps);
    pd::train::TrainOptions s1;
    s1.steps = o.stage1_steps;
    s1.batch_size = o.batch;
    s1.seed = o.seed;
    s1.random_flip = true;
    s1.adamw.weight_decay = 0.0;
    s1.lr.lr = 2e-3;
    s1.lr.warmup_steps = std::min<std::int64_t>(100, o.stage1_steps / 10);
    s1.lr.decay = pd::optim::LrDecay::Cosine;
    s1.lr.lr_min = 2e-4;
    s1.ema.decay = 0.995;
    s1.ema.warmup = pd::optim::EmaWarmup::Simple;
    s1.checkpoint_every = 200;
    s1.checkpoint_path = o.out / "base.safetensors";
    s1.csv_path = o.out / "base.csv";
    s1.progress = progress;
    pd::train::train_stage1(base, schedule, train, s1);
    {
      pd::optim::Ema<float, Cpu> ema;
      pd::io::ModelDescription d = base.describe();
      pd::model::describe_schedule(d, schedule);
      pd::io::load_checkpoint(s1.checkpoint_path, base, d, static_cast<pd::optim::AdamW<float, Cpu>*>(nullptr), &ema);
      ema.copy_to(base);
    }
    const double stage1_seconds = seconds_since(t1);
    const double base_flops = static_cast<double>(base.denoiser(0).flops(image));

    // The per-bin test loss every model is measured on (five equal bins of timesteps).
    const pd::group::Partition bins = pd::group::UniformSplit{5}.group(schedule);
    pd::metrics::GroupLossConfig loss_config;
    loss_config.samples_per_group = std::min(o.test_images, test.count);
    loss_config.seed = 1234;  // the same noised inputs for every model: paired comparisons

    std::optional<pd::metrics::TrainedClassifier<float, Cpu>> classifier;
    std::optional<pd::metrics::FeatureStatistics> test_features;
    if (!o.classifier.empty()) {
      std::printf("== classifier %s\n", o.classifier.string().c_str());
      std::fflush(stdout);
      classifier.emplace(pd::metrics::load_or_train_classifier<float, Cpu>(o.classifier, o.data, o.seed));
      // the test split through the same 16x16 bottleneck as the samples
      test_features.emplace(pd::metrics::classifier_feature_statistics(
          classifier->model, upsampled(test.pixels, std::min<std::int64_t>(test.count, 10000)), 500));
    }

    std::vector<Row> rows;
    bool ok = true;
    auto fail = [&](const std::string& what) {
      std::fprintf(stderr, "check failed: %s\n", what.c_str());
      ok = false;
    };
    auto measure = [&](Row row, Model& m, double seconds) {
      m.set_training(false);
      row.average_flops = m.average_flops(image);
      row.average_parameters = average_parameters(m);
      const auto losses = pd::metrics::denoising_loss_per_group<float, Cpu>(m, schedule, bins, test, loss_config);
      for (const auto& l : losses) {
        row.bin_loss.push_back(l.mse);
        row.mean_loss += l.mse / static_cast<double>(losses.size());
        if (!std::isfinite(l.mse)) fail(row.name + ": a test loss is not finite");
      }
      std::ostringstream gf;
      for (std::int64_t g = 0; g < m.group_count(); ++g)
        gf << (g ? " / " : "") << std::lround(static_cast<double>(m.flops(image, g)) / 1e5) / 10.0;
      row.group_flops = gf.str();
      if (classifier) {
        const auto sampler = pd::sample::Ddim::from_schedule(schedule, o.ddim_steps);
        const auto x = sampler.sample<float, Cpu>(m, pd::Shape{o.fid_samples, 1, 16, 16}, o.seed + 99, 0);
        row.frechet = pd::metrics::frechet_distance(
            *test_features,
            pd::metrics::classifier_feature_statistics(classifier->model, upsampled(x.to_host(), o.fid_samples), 500));
      }
      row.seconds = seconds;
      std::printf("   %-28s avg FLOPs %.2fM (%.0f%%)  mean test loss %.5f\n", row.name.c_str(), row.average_flops / 1e6,
                  100.0 * row.average_flops / base_flops, row.mean_loss);
      std::fflush(stdout);
      rows.push_back(std::move(row));
    };
    {
      Row b;
      b.table = "base";
      b.name = "base (stage 1 only)";
      measure(b, base, stage1_seconds);
    }

    // One TDC pipeline run: prune per group with `pruning` under `partition`, fine-tune, measure.
    std::map<std::string, Row> done_runs;
    auto tdc = [&](const std::string& key, pd::group::Partition partition, pd::tdc::TdcPruning pruning) {
      std::printf("== %s (%lld groups, budgets", key.c_str(), static_cast<long long>(partition.groups()));
      for (double b : partition.budgets) std::printf(" %.3f", b);
      std::printf(")\n");
      std::fflush(stdout);
      const auto t = Clock::now();
      pd::tdc::TdcOptions to;
      to.out_dir = o.out / key;
      to.pruning = pruning;
      to.seed = o.seed;
      to.proxy_rounds = o.proxy_rounds;
      to.proxy_candidates = static_cast<std::size_t>(o.proxy_candidates);
      to.eval_samples = o.quick ? 16 : 128;
      to.importance_batches = o.quick ? 2 : 8;
      to.importance_batch_size = o.batch;
      to.finetune = s1;
      to.finetune.steps = o.finetune_steps;
      to.finetune.lr.lr = 5e-4;
      to.finetune.lr.warmup_steps = 0;
      to.finetune.lr.lr_min = 5e-5;
      to.finetune.ema.decay = 0.98;
      to.finetune.checkpoint_every = 50;
      to.finetune.progress.mode = pd::train::ProgressOptions::Mode::Off;
      const auto budgets = partition.budgets;
      if (!o.proxy_command.empty()) {
        const std::string command = o.proxy_command;
        to.make_proxy = [command](std::int64_t, std::uint64_t) { return pd::prune::ExternalProxy::command(command); };
        to.proxy_name = "command";
      }
      auto r = pd::tdc::run_tdc(base, partition, schedule, train, validation, to);
      for (const auto& g : r.report.groups) {
        if (pruning != pd::tdc::TdcPruning::None && static_cast<double>(g.flops) > g.flops_limit)
          fail(key + ": group " + std::to_string(g.group) + " costs " + std::to_string(g.flops) + " FLOPs, over " +
               std::to_string(g.flops_limit));
      }
      if (pruning != pd::tdc::TdcPruning::None && !(r.report.average_flops < base_flops))
        fail(key + ": the pruned model is not cheaper than the base");
      Row row;
      row.name = key;
      measure(row, *r.model, seconds_since(t));
    };

    const auto snr = pd::group::FlopsIntervalGrouper<pd::difficulty::SnrFlops>{o.groups, {o.k}}.group(schedule);
    // The constant schedule: equal groups, each at the SNR schedule's average budget (so both
    // spend about the same FLOPs, as the paper compares them).
    double snr_average_budget = 0.0;
    for (std::int64_t g = 0; g < snr.groups(); ++g)
      snr_average_budget += snr.budgets[static_cast<std::size_t>(g)] * static_cast<double>(snr.end(g) - snr.begin(g)) /
                            static_cast<double>(Schedule::steps);
    auto constant = pd::group::UniformSplit{o.groups}.group(schedule);
    constant.budgets.assign(static_cast<std::size_t>(constant.groups()), snr_average_budget);
    const auto increasing =
        pd::group::FlopsIntervalGrouper<pd::difficulty::UniIncreasingFlops>{o.groups, {o.k}}.group(schedule);
    const auto decreasing =
        pd::group::FlopsIntervalGrouper<pd::difficulty::UniDecreasingFlops>{o.groups, {o.k}}.group(schedule);

    using P = pd::tdc::TdcPruning;
    tdc("snr-proxy", snr, P::Proxy);
    rows.back().table = "both";
    for (auto [key, part] : {std::pair{"constant-proxy", constant}, std::pair{"uni-increasing-proxy", increasing},
                             std::pair{"uni-decreasing-proxy", decreasing}}) {
      tdc(key, part, P::Proxy);
      rows.back().table = "schedule";
    }
    for (auto [key, p] : {std::pair{"snr-random", P::Random}, std::pair{"snr-magnitude", P::Magnitude},
                          std::pair{"snr-taylor", P::Taylor}, std::pair{"snr-diff-pruning", P::DiffPruning},
                          std::pair{"snr-none (copies, no pruning)", P::None}}) {
      tdc(std::string(key).substr(0, std::string(key).find(' ')), snr, p);
      rows.back().table = "pruning";
      if (p == P::None) rows.back().name = key;
    }
    const double total_seconds = seconds_since(start);

    // The table.
    std::ostringstream md;
    md << "# TDC study: FLOPs schedules and pruning criteria (Fashion-MNIST, 16x16)\n\n";
    md << "Written by `examples/06_tdc_study` (see docs/tdc.md). Command:\n\n    ";
    for (int i = 0; i < argc; ++i) md << (i ? " " : "") << (i == 0 ? "progdiff_example_06_tdc_study" : argv[i]);
    md << "\n\nSettings: " << o.groups << " groups, k = " << o.k << ", U-Net levels 1-2, " << o.channels
       << " base channels, one residual block per level, DDPM linear schedule (T = 1000); stage 1 " << o.stage1_steps
       << " steps, fine-tuning " << o.finetune_steps << " steps per group, batch " << o.batch << ", " << o.train_images
       << " training images of which the last " << o.validation_images
       << " are held out of training and score the pruning; proxy search " << o.proxy_rounds << " rounds of "
       << o.proxy_candidates << " schemes. Test loss: MSE of the noise prediction on " << loss_config.samples_per_group
       << " test images per bin of 200 timesteps, the same noised inputs for every model.\n\n";
    md << "Base: " << base_flops / 1e6 << " MFLOP and " << base.parameter_count()
       << " parameters per evaluation. Machine load (1, 5, 15 min) at the start: " << load_before
       << "; at the end: " << load_average() << ". Wall time " << std::lround(total_seconds) << " s with " << o.threads
       << " OpenMP thread(s) on a machine of " << std::thread::hardware_concurrency()
       << " hardware threads (stage 1: " << std::lround(stage1_seconds) << " s).\n\n";
    auto table = [&](const std::string& title, const std::vector<std::string>& kinds) {
      md << "## " << title
         << "\n\n| run | avg FLOPs (M) | vs base | avg params | FLOPs per group (M) | mean test loss |";
      for (std::int64_t b = 0; b < bins.groups(); ++b) md << " t " << bins.begin(b) << "-" << bins.end(b) - 1 << " |";
      if (classifier) md << " FFD (" << o.fid_samples << ") |";
      md << " wall s |\n|---|---|---|---|---|---|";
      for (std::int64_t b = 0; b < bins.groups(); ++b) md << "---|";
      if (classifier) md << "---|";
      md << "---|\n";
      for (const auto& r : rows) {
        if (std::find(kinds.begin(), kinds.end(), r.table) == kinds.end()) continue;
        char buf[256];
        std::snprintf(buf, sizeof buf, "| %s | %.2f | %.0f%% | %.0f | %s | %.5f |", r.name.c_str(),
                      r.average_flops / 1e6, 100.0 * r.average_flops / base_flops, r.average_parameters,
                      r.group_flops.c_str(), r.mean_loss);
        md << buf;
        for (double l : r.bin_loss) {
          std::snprintf(buf, sizeof buf, " %.5f |", l);
          md << buf;
        }
        if (classifier) {
          std::snprintf(buf, sizeof buf, " %.2f |", r.frechet);
          md << buf;
        }
        md << " " << std::lround(r.seconds) << " |\n";
      }
      md << "\n";
    };
    table("FLOPs schedules (Table 3), proxy pruning", {"base", "both", "schedule"});
    table("Pruning criteria at equal FLOPs on the SNR schedule (Tables 4 and 6)", {"base", "both", "pruning"});
    md << "![per-bin test loss relative to the base](tdc_results.png)\n\nThe plot: each run's test loss per bin of "
          "timesteps (x: the bin's middle timestep) divided by the base's. Series:";
    for (std::size_t i = 1; i < rows.size(); ++i) md << (i > 1 ? "," : "") << " " << i << " = " << rows[i].name;
    md << ".\n";
    {
      std::ofstream f(o.docs / "tdc_results.md");
      f << md.str();
      if (!f) throw pd::IoError("cannot write " + (o.docs / "tdc_results.md").string());
    }

    // The plot: each run's per-bin test loss divided by the base's.
    std::vector<pd::io::LineSeries> series;
    const Row& base_row = rows.front();
    for (std::size_t i = 1; i < rows.size(); ++i) {
      pd::io::LineSeries s{rows[i].name, {}, {}, pd::io::series_color(i - 1)};
      for (std::size_t b = 0; b < rows[i].bin_loss.size(); ++b) {
        s.x.push_back(
            static_cast<double>(bins.begin(static_cast<std::int64_t>(b)) + bins.end(static_cast<std::int64_t>(b))) / 2);
        s.y.push_back(rows[i].bin_loss[b] / base_row.bin_loss[b]);
      }
      series.push_back(std::move(s));
    }
    pd::io::PlotOptions po;
    po.width = 820, po.height = 460, po.line_width = 2;
    po.x_label = "timestep (bin centre)", po.y_label = "test loss / the base's";
    if (!pd::io::write_line_plot((o.docs / "tdc_results.png").string(), series, po))
      std::printf("no gnuplot: tdc_results.png not drawn\n");
    std::printf("wrote %s and %s (%.0f s)\n", (o.docs / "tdc_results.md").string().c_str(),
                (o.docs / "tdc_results.png").string().c_str(), total_seconds);
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

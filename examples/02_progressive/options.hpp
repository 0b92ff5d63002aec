#pragma once
// Command-line options of the main job (examples/02_progressive): parsing, defaults of the
// three configurations (default, --tiny, --paper-scale) and the --help text.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "models.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/train/tdc_options.hpp"

namespace job {

enum class Variant { Experts, Unified, MultiStage, Tdc, Separate };

/// The command-line name of every variant; the count check fails to compile when a variant is
/// added without a name.
inline constexpr std::array<std::pair<Variant, const char*>, 5> kVariantNames{{
    {Variant::Experts, "experts"},
    {Variant::Unified, "unified"},
    {Variant::MultiStage, "multi-stage"},
    {Variant::Tdc, "tdc"},
    {Variant::Separate, "separate"},
}};
static_assert(kVariantNames.size() == static_cast<std::size_t>(Variant::Separate) + 1,
              "kVariantNames needs one row per Variant value (Separate is the last)");

/// How the timesteps are split into groups (--grouping).
enum class Grouping {
  Flops,            // FLOPs intervals of the SNR budget (eqs. 8-10 of the step-adaptive paper)
  Uniform,          // equal runs of timesteps
  Snr,              // contiguous groups of least SNR spread (1-D k-means, exact DP)
  OptimalDenoiser,  // the multi-stage paper: Algorithm 1 for 3 groups, its exact DP for other N
};
inline constexpr std::array<std::pair<Grouping, const char*>, 4> kGroupingNames{{
    {Grouping::Flops, "flops"},
    {Grouping::Uniform, "uniform"},
    {Grouping::Snr, "snr"},
    {Grouping::OptimalDenoiser, "optimal-denoiser"},
}};
static_assert(kGroupingNames.size() == static_cast<std::size_t>(Grouping::OptimalDenoiser) + 1,
              "kGroupingNames needs one row per Grouping value (OptimalDenoiser is the last)");

/// The name of `value` in `table`, "?" when absent.
template <class E, std::size_t N>
const char* name_in(const std::array<std::pair<E, const char*>, N>& table, E value) {
  for (const auto& [v, name] : table)
    if (v == value) return name;
  return "?";
}

/// The value called `name` in `table`; ConfigError naming the flag and listing the names.
template <class E, std::size_t N>
E parse_name(const std::array<std::pair<E, const char*>, N>& table, const std::string& flag, const std::string& name) {
  std::string names;
  for (const auto& [v, n] : table) {
    if (name == n) return v;
    names += (names.empty() ? "" : ", ") + std::string(n);
  }
  throw progdiff::ConfigError(flag + ": unknown value '" + name + "' (choose " + names + ")");
}

inline const char* variant_name(Variant v) { return name_in(kVariantNames, v); }
inline const char* grouping_name(Grouping g) { return name_in(kGroupingNames, g); }

/// Everything the job does, after the configuration's defaults and the flags are applied.
struct Options {
  Variant variant = Variant::Experts;
  bool tiny = false;         // a smoke-test configuration: small data, model and step counts
  bool paper_scale = false;  // the papers' CIFAR-size U-Net (hours on a CPU)
  std::int64_t groups = 3;   // timestep groups (N of the grouper)
  Grouping grouping = Grouping::Flops;
  double min_flops_ratio = 0.5;   // k of eq. 8: the cheapest group's budget as a fraction of the base
  std::int64_t steps = 0;         // stage-1 optimizer steps
  std::int64_t stage2_steps = 0;  // stage-2 steps (each trains every group on its own batch)
  double budget_scale = 1.0;      // --budget-scale: multiplies both step counts (convergence studies)
  std::int64_t batch = 0;
  std::int64_t channels = 0;  // base width of the U-Net
  double lr = 0.0;
  std::int64_t train_images = 0;  // 0: the whole training split
  std::int64_t test_images = 0;   // 0: the whole test split (metrics and the classifier's accuracy)
  // The last N training images, held out of training: whatever chooses (TDC's pruning search and
  // criteria) is scored on them, never on the test split, which gives the final numbers only.
  std::int64_t validation_images = 0;
  // Every variant spends the training FLOPs of the copies' stage 1 and stage 2 (forward +
  // backward over every image seen, pruning evaluations included), its step counts scaled to it.
  bool equal_compute = false;
  std::int64_t ddim_steps = 0;
  std::int64_t grid = 0;          // images in samples.png
  std::int64_t fid_samples = 0;   // generated images for the Frechet distance (0: skip it)
  std::int64_t loss_samples = 0;  // test images per group for the per-group loss
  std::uint64_t seed = 0;
  std::filesystem::path out;  // empty: progressive_<variant>[_tiny | _paper] in the working directory
  std::filesystem::path data = "/usr/share/datasets/fashion-mnist";
  std::filesystem::path classifier;  // empty: <out>/../fashion_classifier.safetensors
  bool classifier_given = false;     // --classifier was given (a tiny run then uses it too)
  std::string pruning = "proxy";     // --variant tdc: the pruning criterion of every group
  std::int64_t tdc_group = -1;       // --variant tdc: >= 0 runs this group only (one process per group)
  std::string
      proxy_command;  // --variant tdc, proxy pruning: a shell command answers the proxy (empty: the built-in search)
  // --base-from: a diffusers UNet2DModel (or DDPM pipeline) folder is the stage-1 base instead
  // of a model trained here; its structure picks the scale, its block_out_channels the widths.
  std::filesystem::path base_from;
  Device device = Device::Cpu;         // --backend
  std::filesystem::path compare_with;  // samples of another run to compare with (--compare-with)
  double tolerance = 0.05;
  bool help = false;
};

inline const char* usage() {
  return R"(usage: progdiff_example_02_progressive [flags]

Trains a small U-Net on Fashion-MNIST (stage 1), splits the timesteps into groups by the
FLOPs-interval rule, trains one denoiser per group (stage 2), samples a grid with DDIM and
writes samples.png, report.md (per-group FLOPs, parameters, test loss, Frechet distance,
wall times), training logs, loss plots and checkpoints to the output directory.

  --variant V        experts (default): stage 1, then a copy of the base per group,
                       each fine-tuned on its group's timesteps
                     unified: one U-Net for every timestep, trained for the same number
                       of images as the experts (the baseline)
                     multi-stage: one shared encoder and one decoder per group, the
                       decoders narrower for noisier groups, trained on mixed batches
                     tdc: stage 1, then per group the base pruned to the group's FLOPs
                       budget and fine-tuned on its timesteps (TDC stage 2)
                     separate: one whole U-Net per group, trained from scratch on
                       mixed batches (the multi-stage paper's separate experts)
  --tdc              the same as --variant tdc
  --pruning C        tdc: proxy (default), random, magnitude, taylor, diff-pruning or none
  --tdc-group G      tdc: prune and fine-tune group G only, for one process per group; a
                       last run without it assembles the groups and evaluates
  --proxy-command C  tdc with proxy pruning: a shell command answers the proxy's prompt
                       (prune/external_proxy.hpp; tools/proxy/echo_proxy.py is an example)
  --base-from DIR    experts, tdc: stage 2 starts from the diffusers UNet2DModel in DIR (a
                       save_pretrained folder, or a DDPM pipeline folder whose scheduler must
                       be the job's: linear betas 1e-4 .. 0.02 over 1000 steps, epsilon)
                       instead of a stage 1 trained here; its config picks the scale (small
                       or paper structure, 1 channel, 32x32) and its widths replace --channels
  --groups N         timestep groups (default 3)
  --grouping G       flops (default: FLOPs intervals, eqs. 8-10), uniform, snr (least SNR
                       spread) or optimal-denoiser (Algorithm 1 of the multi-stage paper for
                       3 groups, its exact DP for other counts); every group's FLOPs budget
                       is the largest eq. 8 budget among its timesteps
  --validation-images N  the last N training images are held out of training and select
                       (TDC's pruning search); default 5000, tiny 64
  --equal-compute    every variant spends the training FLOPs of stage 1 and stage 2 of the
                       copies (forward + backward over every image, pruning included),
                       its step counts scaled to match
  --min-flops K      k of eq. 8, the noisiest group's FLOPs share (default 0.5; it sets
                       the groups' boundaries and the multi-stage decoder widths)
  --steps N          stage-1 steps (multi-stage: its training steps)
  --stage2-steps N   stage-2 steps; each trains every group on a batch of its own
  --budget-scale X   multiply the stage-1 and stage-2 step counts (defaults or given) by X,
                       rounded: a training budget X times the configuration's
  --batch N          images per batch
  --channels N       base width of the U-Net (a multiple of 8)
  --lr X             peak learning rate (linear warm-up, cosine decay)
  --train-images N   use the first N training images (0: all 60000), validation included
  --test-images N    use the first N test images (0: all 10000)
  --ddim-steps N     DDIM steps for samples.png and the Frechet distance
  --grid N           images in samples.png
  --fid-samples N    generated images for the Frechet distance (0: skip it)
  --loss-samples N   test images per group for the per-group loss
  --seed N           seed of initialization, data order, noise and sampling
  --out DIR          output directory (default progressive_<variant>, with _tiny or _paper
                       for those configurations); a run there is resumed from its checkpoints
  --data DIR         Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
  --classifier FILE  the metric's classifier, trained and saved there when missing
                       (default: fashion_classifier.safetensors beside DIR)
  --backend B        cpu (default) or cuda: where the models train and sample (cuda in the
                       _cuda build of this program; the metric's classifier stays on the CPU)
  --compare-with F   compare the samples with those of another run (its samples.safetensors,
                       e.g. the same flags on the other back end) and fail when a pixel
                       differs by more than --tolerance times max(1, |theirs|) (default 0.05)
  --tiny             a configuration for smoke tests (about a minute): few images, a narrow
                       net, few steps; flags after it still apply
  --paper-scale      the papers' U-Net (channels 128, levels 1-2-2-2, two residual blocks,
                       attention at 16x16) and training length: days on a CPU
  --help             this text
)";
}

/// The defaults of the configuration the flags select (tiny / default / paper scale).
inline void apply_configuration(Options& o) {
  if (o.paper_scale) {
    o.steps = 80000, o.stage2_steps = 20000, o.batch = 128, o.channels = 128, o.lr = 2e-4;
    o.validation_images = 5000;
    o.ddim_steps = 100, o.grid = 64, o.fid_samples = 10000, o.loss_samples = 2000;
  } else if (o.tiny) {
    o.steps = 20, o.stage2_steps = 10, o.batch = 16, o.channels = 8, o.lr = 2e-3, o.train_images = 512;
    o.validation_images = 64;
    o.test_images = 1000;
    o.ddim_steps = 5, o.grid = 16, o.fid_samples = 32, o.loss_samples = 32;
  } else {
    o.steps = 1000, o.stage2_steps = 200, o.batch = 64, o.channels = 32, o.lr = 2e-3;
    o.validation_images = 5000;
    o.ddim_steps = 20, o.grid = 64, o.fid_samples = 500, o.loss_samples = 500;
  }
}

namespace detail {
inline std::int64_t to_integer(const std::string& flag, const std::string& v, std::int64_t lo, std::int64_t hi) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE)
    throw progdiff::ConfigError(flag + ": expected an integer, got '" + v + "'");
  if (x < lo || x > hi)
    throw progdiff::ConfigError(flag + ": " + v + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                "]");
  return x;
}
inline double to_real(const std::string& flag, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') throw progdiff::ConfigError(flag + ": expected a number, got '" + v + "'");
  if (!(x >= lo && x <= hi))
    throw progdiff::ConfigError(flag + ": " + v + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                "]");
  return x;
}
}  // namespace detail

/// The options of argv; ConfigError names the flag and what is wrong with it.
inline Options parse_options(int argc, const char* const* argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  Options o;
  // The configuration flags choose the defaults first, wherever they stand.
  for (const auto& a : args) {
    o.tiny = o.tiny || a == "--tiny";
    o.paper_scale = o.paper_scale || a == "--paper-scale";
  }
  if (o.tiny && o.paper_scale) throw progdiff::ConfigError("--tiny and --paper-scale exclude each other");
  apply_configuration(o);
  constexpr std::int64_t kMax = std::int64_t{1} << 40;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--tiny" || flag == "--paper-scale") continue;
    if (flag == "--help" || flag == "-h") {
      o.help = true;
      continue;
    }
    if (flag.rfind("--", 0) != 0)
      throw progdiff::ConfigError("unexpected argument '" + flag + "': flags start with -- (see --help)");
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw progdiff::ConfigError(flag + " needs a value (see --help)");
      return args[++i];
    };
    if (flag == "--variant") {
      o.variant = parse_name(kVariantNames, flag, value());
    } else if (flag == "--tdc") {
      o.variant = Variant::Tdc;
    } else if (flag == "--pruning") {
      o.pruning = value();
      try {
        progdiff::train::parse_tdc_pruning(o.pruning);
      } catch (const progdiff::ConfigError& e) {
        throw progdiff::ConfigError(std::string("--pruning: ") + e.what());
      }
    } else if (flag == "--tdc-group") {
      o.tdc_group = detail::to_integer(flag, value(), 0, 7);
    } else if (flag == "--proxy-command") {
      o.proxy_command = value();
      if (o.proxy_command.empty()) throw progdiff::ConfigError("--proxy-command: the command is empty");
    } else if (flag == "--grouping") {
      o.grouping = parse_name(kGroupingNames, flag, value());
    } else if (flag == "--validation-images") {
      o.validation_images = detail::to_integer(flag, value(), 1, 59999);
    } else if (flag == "--equal-compute") {
      o.equal_compute = true;
    } else if (flag == "--groups") {
      o.groups = detail::to_integer(flag, value(), 1, 8);
    } else if (flag == "--min-flops") {
      o.min_flops_ratio = detail::to_real(flag, value(), 0.05, 1.0);
    } else if (flag == "--steps") {
      o.steps = detail::to_integer(flag, value(), 1, kMax);
    } else if (flag == "--stage2-steps") {
      o.stage2_steps = detail::to_integer(flag, value(), 0, kMax);
    } else if (flag == "--batch") {
      o.batch = detail::to_integer(flag, value(), 1, 4096);
    } else if (flag == "--channels") {
      o.channels = detail::to_integer(flag, value(), 8, 512);
      if (o.channels % 8 != 0)
        throw progdiff::ConfigError("--channels: " + std::to_string(o.channels) +
                                    " is not a multiple of 8 (the GroupNorm groups)");
    } else if (flag == "--budget-scale") {
      o.budget_scale = detail::to_real(flag, value(), 1e-3, 1e3);
    } else if (flag == "--lr") {
      o.lr = detail::to_real(flag, value(), 1e-7, 1.0);
    } else if (flag == "--train-images") {
      o.train_images = detail::to_integer(flag, value(), 0, 60000);
    } else if (flag == "--test-images") {
      o.test_images = detail::to_integer(flag, value(), 0, 10000);
    } else if (flag == "--ddim-steps") {
      o.ddim_steps = detail::to_integer(flag, value(), 1, 1000);
    } else if (flag == "--grid") {
      o.grid = detail::to_integer(flag, value(), 1, 1024);
    } else if (flag == "--fid-samples") {
      o.fid_samples = detail::to_integer(flag, value(), 0, 100000);
      if (o.fid_samples == 1) throw progdiff::ConfigError("--fid-samples: the Frechet distance needs 0 or >= 2 images");
    } else if (flag == "--loss-samples") {
      o.loss_samples = detail::to_integer(flag, value(), 1, 10000);
    } else if (flag == "--seed") {
      o.seed = static_cast<std::uint64_t>(detail::to_integer(flag, value(), 0, kMax));
    } else if (flag == "--out") {
      o.out = value();
    } else if (flag == "--data") {
      o.data = value();
    } else if (flag == "--classifier") {
      o.classifier = value();
      o.classifier_given = true;
    } else if (flag == "--base-from") {
      o.base_from = value();
    } else if (flag == "--backend") {
      o.device = parse_device(flag, value());
    } else if (flag == "--compare-with") {
      o.compare_with = value();
    } else if (flag == "--tolerance") {
      o.tolerance = detail::to_real(flag, value(), 0.0, 2.0);
    } else {
      throw progdiff::ConfigError("unknown flag '" + flag + "' (see --help)");
    }
  }
  if (o.budget_scale != 1.0) {
    o.steps = std::max<std::int64_t>(1, std::llround(static_cast<double>(o.steps) * o.budget_scale));
    o.stage2_steps = std::llround(static_cast<double>(o.stage2_steps) * o.budget_scale);
  }
  if (o.tdc_group >= 0 && o.variant != Variant::Tdc)
    throw progdiff::ConfigError("--tdc-group: only the tdc variant runs groups separately (add --tdc)");
  if (o.tdc_group >= o.groups)
    throw progdiff::ConfigError("--tdc-group: group " + std::to_string(o.tdc_group) + " does not exist with --groups " +
                                std::to_string(o.groups));
  if (!o.proxy_command.empty() && (o.variant != Variant::Tdc || o.pruning != "proxy"))
    throw progdiff::ConfigError("--proxy-command: only the tdc variant's proxy pruning asks a proxy (add --tdc)");
  if (!o.base_from.empty() && o.variant != Variant::Experts && o.variant != Variant::Tdc)
    throw progdiff::ConfigError(
        std::string("--base-from: only the experts and tdc variants start from a stage-1 base; --variant ") +
        variant_name(o.variant) + " trains from scratch");
  if (!o.base_from.empty() && o.equal_compute)
    throw progdiff::ConfigError(
        "--base-from with --equal-compute: the compute budget counts stage 1's training, which happened elsewhere");
  if (o.train_images > 0 && o.validation_images >= o.train_images)
    throw progdiff::ConfigError("--validation-images: " + std::to_string(o.validation_images) +
                                " held out of --train-images " + std::to_string(o.train_images) +
                                " leaves nothing to train on");
  if (o.batch < 2 && (o.variant == Variant::MultiStage || o.variant == Variant::Separate))
    throw progdiff::ConfigError("--batch: multi-stage training mixes groups in a batch and needs at least 2 images");
  if (o.out.empty())
    o.out = std::string("progressive_") + (o.variant == Variant::MultiStage ? "multi_stage" : variant_name(o.variant)) +
            (o.grouping == Grouping::Flops ? "" : std::string("_") + grouping_name(o.grouping)) +
            (o.tiny ? "_tiny" : (o.paper_scale ? "_paper" : ""));
  if (o.classifier.empty()) {
    auto dir = std::filesystem::absolute(o.out).lexically_normal();
    if (!dir.has_filename()) dir = dir.parent_path();  // "run/" names the directory "run"
    o.classifier = dir.parent_path() / "fashion_classifier.safetensors";
  }
  return o;
}

}  // namespace job

#pragma once
// What the main job (apps/progressive) is told to do: its options, the names of their values and
// the defaults of the three configurations (default, --tiny, --paper-scale). The flags that set
// them are in flags.hpp, which only main.cpp includes: CLI11 costs every unit that parses it
// several seconds and about 128 KB of code.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "models.hpp"
#include "progdiff/backend/cpu/matmul_precision.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/tdc/options.hpp"

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

/// Where EDM's sigma_data comes from (--sigma-data X | data | rms).
enum class SigmaDataSource {
  Given,              // a number on the command line, or the default
  StandardDeviation,  // 'data': the training pixels' standard deviation
  RootMeanSquare,     // 'rms': their root mean square, the spread about zero
};

/// The --sigma-data word of each source measured on the training pixels.
inline constexpr std::array<std::pair<SigmaDataSource, const char*>, 2> kSigmaDataSourceNames{{
    {SigmaDataSource::StandardDeviation, "data"},
    {SigmaDataSource::RootMeanSquare, "rms"},
}};

/// What a measured source takes of the training pixels.
inline const char* sigma_data_measure(SigmaDataSource s) {
  return s == SigmaDataSource::RootMeanSquare ? "root mean square" : "standard deviation";
}

/// The name of `value` in `table`, "?" when absent.
template <class E, std::size_t N>
const char* name_in(const std::array<std::pair<E, const char*>, N>& table, E value) {
  for (const auto& [v, name] : table)
    if (v == value) return name;
  return "?";
}

inline const char* variant_name(Variant v) { return name_in(kVariantNames, v); }
inline const char* grouping_name(Grouping g) { return name_in(kGroupingNames, g); }
inline const char* objective_name(ObjectiveKind k) { return name_in(kObjectiveNames, k); }
inline const char* arch_name(Arch a) { return name_in(kArchNames, a); }
inline const char* edm_noise_label_name(pd::model::EdmNoiseLabel l) { return name_in(kEdmNoiseLabelNames, l); }

/// What the report says after sigma_data's value about where it came from (nothing when given).
inline std::string sigma_data_source_note(SigmaDataSource s) {
  if (s == SigmaDataSource::Given) return "";
  return std::string(" (--sigma-data ") + name_in(kSigmaDataSourceNames, s) + ": the training pixels' " +
         sigma_data_measure(s) + ")";
}

/// Everything the job does, after the configuration's defaults and the flags are applied.
struct Options {
  // The default is the arm that did best at this program's default budget in the evidence study
  // (docs/results.md): the shared encoder with per-group decoders on the FLOPs-interval groups.
  Variant variant = Variant::MultiStage;
  bool tiny = false;         // a smoke-test configuration: small data, model and step counts
  bool paper_scale = false;  // the papers' CIFAR-size U-Net (hours on a CPU)
  std::int64_t groups = 3;   // timestep groups (N of the grouper)
  Grouping grouping = Grouping::Flops;
  ObjectiveKind objective = ObjectiveKind::Simple;  // --objective: the training recipe (recipes.hpp)
  Arch arch = Arch::Ddpm;                           // --arch: the U-Net's blocks
  // --sigma-data (edm): EDM's sigma_data as given, or measured on the training images' pixels
  // when they are loaded (main.cpp): their standard deviation or their root mean square.
  double sigma_data = RecipeSettings{}.sigma_data;
  SigmaDataSource sigma_data_source = SigmaDataSource::Given;
  pd::model::EdmNoiseLabel edm_noise_label = RecipeSettings{}.noise_label;  // --edm-noise-label (edm)
  double edm_p_mean = RecipeSettings{}.p_mean;  // --edm-p-mean (edm): the training noise levels' log-normal
  double edm_p_std = RecipeSettings{}.p_std;    // --edm-p-std (edm)
  double min_flops_ratio = 0.5;                 // k of eq. 8: the cheapest group's budget as a fraction of the base
  std::int64_t steps = 0;                       // stage-1 optimizer steps
  std::int64_t stage2_steps = 0;                // stage-2 steps (each trains every group on its own batch)
  double budget_scale = 1.0;                    // --budget-scale: multiplies both step counts (convergence studies)
  // --stage1-share: stage 1's share of the plan's steps (stage 1 + stage 2 x groups), the rest
  // to stage 2 (tdc, experts: a longer fine-tuning at the same total); 0: as configured.
  double stage1_share = 0.0;
  double minutes = 0.0;  // --minutes: scale the step counts to this wall time (0: off)
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
  // On in the default configuration, as the evidence study compared the variants.
  bool equal_compute = false;
  std::int64_t ddim_steps = 0;    // the sampler's steps (--sampling-steps; DDIM's for the simple recipe)
  std::int64_t nll_images = 0;    // test images for bits/dim (0: not measured)
  std::int64_t nll_steps = 50;    // sampled KL steps per image of the bits/dim estimate (0: every step)
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
  Device device = Device::Cpu;  // --backend
  bool bf16 = false;  // --bf16: the CPU convolutions in bf16 mixed precision (backend/cpu/matmul_precision.hpp)
  std::filesystem::path compare_with;  // samples of another run to compare with (--compare-with)
  double tolerance = 0.05;
};

/// The recipe's run-time settings from the options (sigma_data resolved when measured).
inline RecipeSettings recipe_settings(const Options& o) {
  return {o.sigma_data, o.edm_noise_label, o.edm_p_mean, o.edm_p_std};
}

/// What --help prints above the flags.
inline constexpr const char* kDescription =
    "Trains a progressive diffusion model on Fashion-MNIST: the timesteps split into groups by the\n"
    "FLOPs-interval rule, by default one shared U-Net encoder with a decoder per group (multi-stage;\n"
    "--variant picks copies of a base, TDC pruning, separate experts or one U-Net), at the training\n"
    "FLOPs of the copies' two stages; samples a grid with DDIM and writes samples.png, report.md\n"
    "(per-group FLOPs, parameters, test loss, Frechet distance, wall times), training logs, loss\n"
    "plots and checkpoints to the output directory.\n"
    "Defaults shown are those of the configuration chosen (--tiny, --paper-scale or neither).";

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
    o.equal_compute = true;
    o.ddim_steps = 20, o.grid = 64, o.fid_samples = 500, o.loss_samples = 500;
  }
}

}  // namespace job

#pragma once
// The main job's command line (CLI11): the flags bound to Options, and the checks across flags.
// Included by main.cpp only (options.hpp says why).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>

#include <CLI/CLI.hpp>

#include "options.hpp"
#include "progdiff/backend/cpu/matmul_precision.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/tdc/options.hpp"

namespace job {

/// The flags of `o` on `app`, bound to its fields; `o` holds the chosen configuration's
/// defaults (apply_configuration), which --help shows. Values of a closed set are checked by
/// CLI11; the checks that involve several flags are in finish_options.
inline void add_flags(CLI::App& app, Options& o, std::string& pruning_flag, std::string& backend_flag) {
  constexpr std::int64_t kMax = std::int64_t{1} << 40;
  auto names = [](const auto& table) {
    std::map<std::string, typename std::decay_t<decltype(table)>::value_type::first_type> m;
    for (const auto& [value, name] : table) m.emplace(name, value);
    return m;
  };
  app.add_option("--variant", o.variant,
                 "experts: stage 1, then a copy of the base per group, each fine-tuned on its group's "
                 "timesteps; unified: one U-Net for every timestep (the baseline); multi-stage: one shared "
                 "encoder and one decoder per group, narrower for noisier groups; tdc: stage 1, then per group "
                 "the base pruned to its FLOPs budget and fine-tuned (TDC stage 2); separate: one whole U-Net "
                 "per group, from scratch (the multi-stage paper's separate experts)")
      ->transform(CLI::CheckedTransformer(names(kVariantNames)).description(""))
      ->type_name("NAME")
      ->default_str(variant_name(o.variant));
  app.add_flag_callback(
      "--tdc", [&o] { o.variant = Variant::Tdc; }, "the same as --variant tdc");
  app.add_option("--pruning", pruning_flag, "tdc: proxy, random, magnitude, taylor, diff-pruning or none")
      ->capture_default_str();
  app.add_option("--tdc-group", o.tdc_group,
                 "tdc: prune and fine-tune group G only, for one process per group; a last run without it "
                 "assembles the groups and evaluates")
      ->check(CLI::Range(0, 7));
  app.add_option("--proxy-command", o.proxy_command,
                 "tdc with proxy pruning: a shell command answers the proxy's prompt (prune/external_proxy.hpp; "
                 "tools/proxy/echo_proxy.py is an example)");
  app.add_option("--base-from", o.base_from,
                 "experts, tdc: stage 2 starts from the diffusers UNet2DModel in DIR (a save_pretrained folder, "
                 "or a DDPM pipeline folder whose scheduler must be the job's: linear betas 1e-4 .. 0.02 over "
                 "1000 steps, epsilon) instead of a stage 1 trained here; its config picks the scale and its "
                 "widths replace --channels");
  app.add_option("--groups", o.groups, "timestep groups")->check(CLI::Range(1, 8))->capture_default_str();
  app.add_option("--grouping", o.grouping,
                 "flops (FLOPs intervals, eqs. 8-10), uniform, snr (least SNR spread) or optimal-denoiser "
                 "(Algorithm 1 of the multi-stage paper for 3 groups, its exact DP for other counts); every "
                 "group's FLOPs budget is the largest eq. 8 budget among its timesteps")
      ->transform(CLI::CheckedTransformer(names(kGroupingNames)).description(""))
      ->type_name("NAME")
      ->default_str(grouping_name(o.grouping));
  app.add_option("--validation-images", o.validation_images,
                 "the last N training images are held out of training and select (TDC's pruning search)")
      ->check(CLI::Range(1, 59999))
      ->capture_default_str();
  app.add_flag("--equal-compute,!--no-equal-compute", o.equal_compute,
               "every variant spends the training FLOPs of stage 1 and stage 2 of the copies (forward + backward "
               "over every image, pruning included), its step counts scaled to match (on by default in the "
               "default configuration; --no-equal-compute trains the step counts as given)")
      ->default_str(o.equal_compute ? "on" : "off");
  app.add_option("--min-flops", o.min_flops_ratio,
                 "k of eq. 8, the noisiest group's FLOPs share (sets the groups' boundaries and the multi-stage "
                 "decoder widths)")
      ->check(CLI::Range(0.05, 1.0))
      ->capture_default_str();
  app.add_option("--steps", o.steps, "stage-1 steps (multi-stage: its training steps)")
      ->check(CLI::Range(std::int64_t{1}, kMax))
      ->capture_default_str();
  app.add_option("--stage2-steps", o.stage2_steps, "stage-2 steps; each trains every group on a batch of its own")
      ->check(CLI::Range(std::int64_t{0}, kMax))
      ->capture_default_str();
  app.add_option("--budget-scale", o.budget_scale,
                 "multiply the stage-1 and stage-2 step counts (defaults or given) by X, rounded")
      ->check(CLI::Range(1e-3, 1e3))
      ->capture_default_str();
  app.add_option("--stage1-share", o.stage1_share,
                 "tdc, experts: stage 1 trains this share of the plan's steps (stage-1 steps + stage-2 steps x "
                 "groups) and stage 2 the rest, per group, at the same total (for a longer fine-tuning)")
      ->check(CLI::Range(0.05, 0.95));
  app.add_option("--minutes", o.minutes,
                 "scale the stage-1 and stage-2 step counts (defaults or given) so that the run takes about M "
                 "minutes here, from a training rate measured once at the start; the steps chosen are recorded in "
                 "time_budget.json and report.md, and a resumed run keeps them")
      ->check(CLI::Range(0.1, 1e5));
  app.add_option("--batch", o.batch, "images per batch")->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--channels", o.channels, "base width of the U-Net (a multiple of 8)")
      ->check(CLI::Range(8, 512))
      ->capture_default_str();
  app.add_option("--lr", o.lr, "peak learning rate (linear warm-up, cosine decay)")
      ->check(CLI::Range(1e-7, 1.0))
      ->capture_default_str();
  app.add_option("--train-images", o.train_images,
                 "use the first N training images (0: all 60000), validation "
                 "included")
      ->check(CLI::Range(0, 60000))
      ->capture_default_str();
  app.add_option("--test-images", o.test_images, "use the first N test images (0: all 10000)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  app.add_option("--sampling-steps,--ddim-steps", o.ddim_steps,
                 "the sampler's steps for samples.png and the Frechet distance: DDIM's (simple), the strided "
                 "learned-variance DDPM's (hybrid), Heun's (edm: N steps of 2N - 1 model calls; default (N + 1) / 2 of "
                 "the others' N, at most as many calls)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--objective", o.objective,
                 "simple: DDPM's epsilon MSE, linear 1000-step schedule, DDIM; hybrid: IDDPM's L_simple + 0.001 "
                 "L_vlb with a learned variance, cosine 4000-step schedule, strided DDPM sampling with that "
                 "variance; edm: EDM's preconditioning, loss and log-normal noise levels, Heun sampling")
      ->transform(CLI::CheckedTransformer(names(kObjectiveNames)).description(""))
      ->type_name("NAME")
      ->default_str(objective_name(o.objective));
  app.add_option_function<std::string>(
         "--sigma-data",
         [&o](const std::string& value) {
           for (const auto& [source, word] : kSigmaDataSourceNames)
             if (value == word) {
               o.sigma_data_source = source;
               return;
             }
           std::size_t used = 0;
           double v = 0;
           try {
             v = std::stod(value, &used);
           } catch (const std::exception&) {
             used = 0;
           }
           if (used != value.size() || !(v > 0) || !std::isfinite(v))
             throw CLI::ValidationError("--sigma-data", "'" + value + "' is not a positive number, 'data' or 'rms'");
           o.sigma_data = v, o.sigma_data_source = SigmaDataSource::Given;
         },
         "edm: sigma_data of the preconditioning and the loss weight, the data's standard deviation (EDM's 0.5 "
         "suits CIFAR-10 in [-1, 1]); 'data' measures it on the training images as the model sees them, 'rms' "
         "takes their root mean square (their spread about zero, which EDM's derivation assumes)")
      ->type_name("SD|data|rms")
      ->default_str([&o] {
        char text[32];
        std::snprintf(text, sizeof text, "%g", o.sigma_data);
        return std::string(text);
      }());
  app.add_option("--edm-noise-label", o.edm_noise_label,
                 "edm: the network's noise input, log-sigma (the EDM paper's c_noise = ln(sigma) / 4) or grid-timestep "
                 "(sigma's timestep on the 1000-point grid, the range the U-Net's timestep embedding is built for)")
      ->transform(CLI::CheckedTransformer(names(kEdmNoiseLabelNames)).description(""))
      ->type_name("NAME")
      ->default_str(edm_noise_label_name(o.edm_noise_label));
  app.add_option("--edm-p-mean", o.edm_p_mean,
                 "edm: P_mean of the training noise levels, ln(sigma) ~ N(P_mean, P_std^2) (the EDM paper's -1.2)")
      ->check(CLI::Range(-10.0, 10.0))
      ->capture_default_str();
  app.add_option("--edm-p-std", o.edm_p_std, "edm: P_std of the training noise levels (the EDM paper's 1.2)")
      ->check(CLI::Range(0.01, 10.0))
      ->capture_default_str();
  app.add_option("--arch", o.arch,
                 "ddpm: the DDPM U-Net's blocks; ddpmpp: DDPM++'s (BigGAN residual resampling, skips scaled by "
                 "1/sqrt(2), variance-scaling initialization)")
      ->transform(CLI::CheckedTransformer(names(kArchNames)).description(""))
      ->type_name("NAME")
      ->default_str(arch_name(o.arch));
  app.add_option("--nll-images", o.nll_images,
                 "test images for the negative log-likelihood bound in bits/dim (simple: with the fixed posterior "
                 "variance; hybrid: the learned one; 0: not measured)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  app.add_option("--nll-steps", o.nll_steps,
                 "KL steps drawn per image for the bits/dim estimate (0: every step of the chain)")
      ->check(CLI::Range(0, 4000))
      ->capture_default_str();
  app.add_option("--grid", o.grid, "images in samples.png")->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--fid-samples", o.fid_samples, "generated images for the Frechet distance (0: skip it)")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--loss-samples", o.loss_samples, "test images per group for the per-group loss")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of initialization, data order, noise and sampling")
      ->check(CLI::Range(std::uint64_t{0}, static_cast<std::uint64_t>(kMax)))
      ->capture_default_str();
  app.add_option("--out", o.out,
                 "output directory (default progressive_<variant>, with _tiny or _paper for those "
                 "configurations); a run there is resumed from its checkpoints");
  app.add_option("--data", o.data, "Fashion-MNIST directory")->capture_default_str();
  app.add_option("--classifier", o.classifier,
                 "the metric's classifier, trained and saved there when missing (default: "
                 "fashion_classifier.safetensors beside the output directory)")
      ->each([&o](const std::string&) { o.classifier_given = true; });
  app.add_option("--backend", backend_flag,
                 "cpu or cuda: where the models train and sample (cuda in the _cuda build of this program; the "
                 "metric's classifier stays on the CPU)")
      ->capture_default_str();
  app.add_flag("--bf16", o.bf16,
               "the CPU back end's convolutions in bf16 mixed precision: operands rounded to bf16, products "
               "summed in fp32, weights and gradients kept in fp32 (needs AVX512_BF16; not the default until "
               "its Frechet distance is measured, docs/performance.md)");
  app.add_option("--compare-with", o.compare_with,
                 "compare the samples with those of another run (its samples.safetensors) and fail when a pixel "
                 "differs by more than --tolerance times max(1, |theirs|)");
  app.add_option("--tolerance", o.tolerance, "see --compare-with")->check(CLI::Range(0.0, 2.0))->capture_default_str();
  app.add_flag("--tiny", o.tiny,
               "a configuration for smoke tests (about a minute): few images, a narrow net, few "
               "steps; flags after it still apply");
  app.add_flag("--paper-scale", o.paper_scale,
               "the papers' U-Net (channels 128, levels 1-2-2-2, two residual blocks, attention at 16x16) and "
               "training length: days on a CPU");
}

/// The options of argv. The configuration flags (--tiny, --paper-scale) choose the defaults
/// first, wherever they stand. Throws CLI::ParseError for what CLI11 checks (--help included:
/// CLI::CallForHelp, which app.exit prints) and ConfigError, naming the flag, for the rest.
inline Options parse_options(CLI::App& app, int argc, const char* const* argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    o.tiny = o.tiny || a == "--tiny";
    o.paper_scale = o.paper_scale || a == "--paper-scale";
  }
  if (o.tiny && o.paper_scale) throw progdiff::ConfigError("--tiny and --paper-scale exclude each other");
  apply_configuration(o);
  std::string pruning = o.pruning, backend = "cpu";
  add_flags(app, o, pruning, backend);
  app.parse(argc, argv);
  o.pruning = pruning;
  try {
    progdiff::tdc::parse_tdc_pruning(o.pruning);
  } catch (const progdiff::ConfigError& e) {
    throw progdiff::ConfigError(std::string("--pruning: ") + e.what());
  }
  o.device = parse_device("--backend", backend);
  if (o.bf16 && o.device != Device::Cpu)
    throw progdiff::ConfigError("--bf16: bf16 mixed precision is the CPU back end's; drop it with --backend cuda");
  if (o.bf16) {
    try {
      progdiff::backend::cpu::require_matmul_precision(progdiff::backend::cpu::MatmulPrecision::bf16,
                                                       progdiff::backend::cpu::identify_cpu());
    } catch (const progdiff::ConfigError& e) {
      throw progdiff::ConfigError(std::string("--bf16: ") + e.what());
    }
  }
  if (o.channels % 8 != 0)
    throw progdiff::ConfigError("--channels: " + std::to_string(o.channels) +
                                " is not a multiple of 8 (the GroupNorm groups)");
  if (o.fid_samples == 1) throw progdiff::ConfigError("--fid-samples: the Frechet distance needs 0 or >= 2 images");
  if (app.count("--proxy-command") > 0 && o.proxy_command.empty())
    throw progdiff::ConfigError("--proxy-command: the command is empty");
  if (o.budget_scale != 1.0) {
    o.steps = std::max<std::int64_t>(1, std::llround(static_cast<double>(o.steps) * o.budget_scale));
    o.stage2_steps = std::llround(static_cast<double>(o.stage2_steps) * o.budget_scale);
  }
  if (o.minutes > 0 && app.count("--budget-scale") > 0)
    throw progdiff::ConfigError("--minutes with --budget-scale: both scale the step counts; give one");
  if (o.minutes > 0 && !o.base_from.empty())
    throw progdiff::ConfigError("--minutes with --base-from: the time budget is planned on a stage 1 trained here");
  if (o.minutes > 0 && o.tdc_group >= 0)
    throw progdiff::ConfigError(
        "--minutes with --tdc-group: the processes of one run would plan their steps apart; plan with --minutes in a "
        "run without --tdc-group, then pass its --steps and --stage2-steps (time_budget.json) to every process");
  if (o.tdc_group >= 0 && o.variant != Variant::Tdc)
    throw progdiff::ConfigError("--tdc-group: only the tdc variant runs groups separately (add --tdc)");
  if (o.tdc_group >= o.groups)
    throw progdiff::ConfigError("--tdc-group: group " + std::to_string(o.tdc_group) + " does not exist with --groups " +
                                std::to_string(o.groups));
  if (!o.proxy_command.empty() && (o.variant != Variant::Tdc || o.pruning != "proxy"))
    throw progdiff::ConfigError("--proxy-command: only the tdc variant's proxy pruning asks a proxy (add --tdc)");
  // A base trained elsewhere is fine-tuned as copies unless a variant is named: the default
  // variant (multi-stage) trains from scratch.
  if (!o.base_from.empty() && app.count("--variant") == 0 && o.variant == Variant::MultiStage)
    o.variant = Variant::Experts;
  if (!o.base_from.empty() && o.variant != Variant::Experts && o.variant != Variant::Tdc)
    throw progdiff::ConfigError(
        std::string("--base-from: only the experts and tdc variants start from a stage-1 base; --variant ") +
        variant_name(o.variant) + " trains from scratch");
  if (!o.base_from.empty() && o.equal_compute) {
    if (app.count("--equal-compute") > 0)
      throw progdiff::ConfigError(
          "--base-from with --equal-compute: the compute budget counts stage 1's training, which happened elsewhere");
    o.equal_compute = false;  // the configuration's default: a base trained elsewhere has no budget to match
  }
  if (o.stage1_share > 0) {
    if (o.variant != Variant::Tdc && o.variant != Variant::Experts)
      throw progdiff::ConfigError(std::string("--stage1-share: only the tdc and experts variants have a stage 1 and a "
                                              "stage 2 (--variant ") +
                                  variant_name(o.variant) + ")");
    if (!o.base_from.empty())
      throw progdiff::ConfigError("--stage1-share with --base-from: stage 1 was trained elsewhere");
    // The plan's total stays; stage 2's per-group steps are rounded and stage 1 takes the remainder.
    const std::int64_t total = o.steps + o.stage2_steps * o.groups;
    o.stage2_steps = std::llround(static_cast<double>(total) * (1.0 - o.stage1_share) / static_cast<double>(o.groups));
    o.steps = total - o.stage2_steps * o.groups;
    if (o.steps < 1)
      throw progdiff::ConfigError("--stage1-share " + std::to_string(o.stage1_share) + ": of " + std::to_string(total) +
                                  " steps, none is left for stage 1");
  }
  if (o.train_images > 0 && o.validation_images >= o.train_images)
    throw progdiff::ConfigError("--validation-images: " + std::to_string(o.validation_images) +
                                " held out of --train-images " + std::to_string(o.train_images) +
                                " leaves nothing to train on");
  if (o.batch < 2 && (o.variant == Variant::MultiStage || o.variant == Variant::Separate))
    throw progdiff::ConfigError("--batch: multi-stage training mixes groups in a batch and needs at least 2 images");
  const bool plain = o.objective == ObjectiveKind::Simple && o.arch == Arch::Ddpm;
  const std::string recipe =
      std::string(" (--objective ") + objective_name(o.objective) + " --arch " + arch_name(o.arch) + ")";
  if (!plain && o.paper_scale)
    throw progdiff::ConfigError("--paper-scale: the paper scale runs --objective simple --arch ddpm only" + recipe +
                                "; the small scale has every objective and architecture");
  if (!plain && !o.base_from.empty())
    throw progdiff::ConfigError("--base-from: a diffusers UNet2DModel is the DDPM U-Net trained on L_simple" + recipe +
                                "; use --objective simple --arch ddpm");
  if (!plain && o.device == Device::Cuda)
    throw progdiff::ConfigError("--backend cuda: this program runs --objective simple --arch ddpm only on CUDA" +
                                recipe);
  // The flags only EDM reads, each refused by name under another objective.
  const auto edm_only = [&](const char* flag, const char* what) {
    if (app.count(flag) > 0 && o.objective != ObjectiveKind::Edm)
      throw progdiff::ConfigError(std::string(flag) + ": only " + what + " (--objective " +
                                  objective_name(o.objective) + "); add --objective edm");
  };
  edm_only("--sigma-data", "EDM's preconditioning has a sigma_data");
  edm_only("--edm-p-mean", "EDM draws log-normal noise levels");
  edm_only("--edm-p-std", "EDM draws log-normal noise levels");
  edm_only("--edm-noise-label", "EDM's preconditioning has a noise label");
  if (o.objective == ObjectiveKind::Edm && o.nll_images > 0)
    throw progdiff::ConfigError(
        "--nll-images: the bits/dim bound needs a discrete DDPM chain; --objective edm has none");
  if (o.objective == ObjectiveKind::Edm && app.count("--sampling-steps") == 0)
    o.ddim_steps = (o.ddim_steps + 1) / 2;  // Heun's 2N - 1 model calls: at most the other samplers' count
  if (o.out.empty())
    o.out = std::string("progressive_") + (o.variant == Variant::MultiStage ? "multi_stage" : variant_name(o.variant)) +
            (o.grouping == Grouping::Flops ? "" : std::string("_") + grouping_name(o.grouping)) +
            (o.objective == ObjectiveKind::Simple ? "" : std::string("_") + objective_name(o.objective)) +
            (o.arch == Arch::Ddpm ? "" : std::string("_") + arch_name(o.arch)) +
            (o.tiny ? "_tiny" : (o.paper_scale ? "_paper" : ""));
  if (o.classifier.empty()) {
    auto dir = std::filesystem::absolute(o.out).lexically_normal();
    if (!dir.has_filename()) dir = dir.parent_path();  // "run/" names the directory "run"
    o.classifier = dir.parent_path() / "fashion_classifier.safetensors";
  }
  return o;
}

}  // namespace job

#pragma once
// The definitions behind job.hpp: training settings, the model-dependent part of the evaluation
// shared by every variant (per-group loss, bits/dim, sampling; the rest is evaluation.cpp's), and
// the variants themselves. Included only by the variant_*.cpp units, each of which instantiates
// one family.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "evaluation.hpp"
#include "job.hpp"
#include "progdiff/backend/cpu/matmul_precision.hpp"
#include "progdiff/core/json_file.hpp"
#include "progdiff/data/data.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/metrics/group_loss.hpp"
#include "progdiff/metrics/nll.hpp"
#include "progdiff/prune/external_proxy.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/sample/fixed_small_variance.hpp"
#include "progdiff/schedule/gaussian_posterior.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/train/multi_stage.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/train/trainer.hpp"
#include "progdiff/unet/separate_experts.hpp"

namespace job {

namespace fs = std::filesystem;

/// Settings shared by every training stage.
inline pd::train::TrainOptions train_options(const Options& o, const std::string& stage, std::int64_t steps,
                                             double lr) {
  pd::train::TrainOptions t;
  t.steps = steps;
  t.batch_size = o.batch;
  t.seed = o.seed;
  t.random_flip = true;
  t.adamw.weight_decay = 0.0;
  t.lr.lr = lr;
  t.lr.warmup_steps = std::min<std::int64_t>(100, steps / 10);
  t.lr.decay = pd::optim::LrDecay::Cosine;
  t.lr.lr_min = lr / 10;
  t.clip_norm = 1.0;
  // An average over about the last 200 steps (decay 0.995), warmed up from the first steps.
  t.ema.decay = o.paper_scale ? 0.9999 : 0.995;
  t.ema.warmup = pd::optim::EmaWarmup::Simple;
  t.checkpoint_path = o.out / (stage + ".safetensors");
  t.checkpoint_every = std::max<std::int64_t>(100, steps / 5);
  t.csv_path = o.out / (stage + "_log.csv");
  t.plot_path = o.out / (stage + "_loss.png");
  return t;
}

inline unet::UNetConfig net_config(const Options& o, const unet::UNetConfig& defaults) {
  unet::UNetConfig c = defaults;
  if (!o.paper_scale) c.groups = 8;
  return c;
}

/// The last logged loss of each group (the mean over the last 10% of steps), from a report.
inline std::vector<double> final_losses(const pd::train::TrainReport& r, std::int64_t groups) {
  std::vector<double> sum(static_cast<std::size_t>(groups), 0.0), count(static_cast<std::size_t>(groups), 0.0);
  const std::size_t from = r.steps.size() - std::min<std::size_t>(r.steps.size(), r.steps.size() / 10 + 1);
  for (std::size_t i = from; i < r.steps.size(); ++i)
    for (std::size_t k = 0; k < r.steps[i].group_losses.size() && k < sum.size(); ++k)
      if (std::isfinite(r.steps[i].group_losses[k])) sum[k] += r.steps[i].group_losses[k], count[k] += 1;
  for (std::size_t k = 0; k < sum.size(); ++k) sum[k] = count[k] > 0 ? sum[k] / count[k] : std::nan("");
  return sum;
}

/// Trains `model` (as the recipe wraps it) with the recipe's objective on `schedule`.
template <class Recipe, class Model, class S>
pd::train::TrainReport train_with_recipe(Model& model, const S& schedule, const pd::data::ImageDataset& data,
                                         const pd::train::TrainOptions& options, pd::train::BatchMode mode,
                                         const RecipeSettings& settings) {
  pd::train::Trainer<Model, S, typename Recipe::Objective> trainer(model, schedule, data, options, mode,
                                                                   Recipe::objective(settings));
  return trainer.run();
}

/// The negative log-likelihood bound in bits/dim on the test split (IDDPM's metric): a hybrid
/// model's own variance, an L_simple model's fixed posterior variance (sample::FixedSmallVariance).
template <class Recipe, class Model, class S>
void measure_nll(const Options& o, Model& model, const S& schedule, const pd::data::ImageDataset& test,
                 Report& report) {
  using B = typename Model::backend_type;
  if constexpr (Recipe::kind == ObjectiveKind::Edm) {
    (void)o, (void)model, (void)schedule, (void)test, (void)report;  // refused by the options
  } else {
    const auto chain = pd::schedule::GaussianPosterior::of(schedule);
    pd::metrics::NllConfig c;
    c.images = std::min(o.nll_images, test.count);
    c.steps = o.nll_steps;
    c.seed = 1234;  // the same noised inputs for every model: a paired comparison
    pd::metrics::NllResult r;
    if constexpr (Recipe::kind == ObjectiveKind::Hybrid) {
      r = pd::metrics::nll_bits_per_dim<float, B>(model, chain, test, c);
    } else {
      pd::sample::FixedSmallVariance<Model> view(model);
      r = pd::metrics::nll_bits_per_dim<float, B>(view, chain, test, c);
    }
    if (!std::isfinite(r.bits_per_dim)) throw std::runtime_error("the bits/dim bound is not finite");
    std::printf("bits/dim on %lld test images: %.4f (standard error %.4f)\n", static_cast<long long>(c.images),
                r.bits_per_dim, r.standard_error);
    report.nll = {r.bits_per_dim, r.standard_error, c.images, c.steps};
  }
}

/// Sampling, metrics and the report for a trained model of any kind (a model::GroupedModel,
/// wrapped as `Recipe` trains it).
template <class Recipe, class Model>
void evaluate(const Options& o, Model& model, const pd::group::Partition& partition,
              const typename Recipe::Schedule& schedule, const pd::data::ImageDataset& train,
              SealedTestSplit& test_split, Report& report) {
  using B = typename Model::backend_type;
  auto& plain = Recipe::inner(model);
  report.schedule_name = Recipe::schedule_name;
  report.sampler_name = Recipe::sampler_name(o.ddim_steps);
  report.loss_target = Recipe::loss_target;
  const pd::Shape image{1, 1, 32, 32};
  // Every choice is made and every weight trained: from here on the test split gives the numbers.
  test_split.open();
  const pd::data::ImageDataset& test = test_split.final_numbers("evaluation");
  report.model_groups = plain.group_count();
  for (std::int64_t k = 0; k < plain.group_count(); ++k)
    report.model_rows.push_back(
        {plain.partition().begin(k), plain.partition().end(k), plain.flops(image, k), plain.parameter_count(k)});
  report.parameters = plain.parameter_count();
  report.average_flops = plain.average_flops(image);

  // Per-group denoising loss on the test split, on the job's partition (the unified model's
  // single group is measured on the same groups as the others).
  report.test_losses = timed(report, "per-group test loss", [&] {
    pd::metrics::GroupLossConfig c;
    c.samples_per_group = std::min(o.loss_samples, test.count);
    c.seed = 1234;  // the same noised inputs for every variant and seed: a paired comparison
    auto&& view = Recipe::loss_view(model);
    return pd::metrics::denoising_loss_per_group<float, B>(view, schedule, partition, test, c);
  });
  if (o.nll_images > 0)
    timed(report, "negative log-likelihood (bits/dim)", [&] { measure_nll<Recipe>(o, model, schedule, test, report); });

  // Samples: the grid is the first `grid` of the images the Frechet distance uses.
  const std::int64_t count = std::max(o.grid, o.fid_samples);
  // Each model call of the sampler by the net that serves its timestep.
  report.sampling_flops_per_image = 0.0;
  for (double t : Recipe::call_timesteps(schedule, o.ddim_steps))
    report.sampling_flops_per_image += static_cast<double>(plain.flops(image, Recipe::group_of(plain.partition(), t)));
  const auto samples =
      timed(report, "sampling (" + std::to_string(count) + " images, " + Recipe::sampler_name(o.ddim_steps) + ")", [&] {
        std::vector<float> all;
        const std::int64_t batch = 250;
        for (std::int64_t first = 0; first < count; first += batch) {
          const std::int64_t n = std::min(batch, count - first);
          const auto x = Recipe::template sample<float, B>(model, schedule, o.ddim_steps, pd::Shape{n, 1, 32, 32},
                                                           o.seed, static_cast<std::uint64_t>(first));
          const auto v = x.to_host();
          all.insert(all.end(), v.begin(), v.end());
          std::printf("  %lld / %lld\n", static_cast<long long>(first + n), static_cast<long long>(count));
          std::fflush(stdout);
        }
        return pd::Tensor<float, Cpu>::from_host(pd::Shape{count, 1, 32, 32}, all);
      });
  evaluate_samples(o, samples, train, test, report);
}

/// Training FLOPs of `images` images through a net of `forward_flops` per image: forward and
/// backward, the backward pass counted as twice the forward (the weight and input gradients).
inline double training_flops(double images, double forward_flops) { return 3.0 * images * forward_flops; }

/// The steps of `batch` images at `forward_flops` each that spend `budget` training FLOPs.
inline std::int64_t steps_for_budget(double budget, std::int64_t batch, double forward_flops) {
  return std::max<std::int64_t>(1, std::llround(budget / training_flops(static_cast<double>(batch), forward_flops)));
}

template <class Scale>
double Job<Scale>::base_flops() const {
  const pd::Shape image{1, 1, 32, 32};
  if constexpr (kPlainDdpm) {
    if (!o.base_from.empty()) {  // the imported widths, read from config.json alone
      const auto c =
          pd::interop::read_diffusers_unet_config(pd::interop::diffusers_unet_folder(o.base_from) / "config.json");
      const Net net(pd::interop::widths_from_diffusers<Net>(c), pd::interop::unet_config_from_diffusers<Net>(c));
      return static_cast<double>(net.flops(image));
    }
  }
  // FLOPs depend on the widths alone: an uninitialized net of the base's widths, not new_base()
  // (the compute plans ask several times, and initializing a paper-scale base takes a while).
  return static_cast<double>(base_net().flops(image));
}

template <class Scale>
double Job<Scale>::compute_budget() const {
  const double images =
      static_cast<double>(o.batch) * static_cast<double>(o.steps + o.stage2_steps * partition.groups());
  return training_flops(images, base_flops());
}

template <class Scale>
typename Scale::Net Job<Scale>::base_net() const {
  return Net(Net::default_widths(o.channels), net_config(o, Net::default_config()));
}

template <class Scale>
pd::model::Progressive<typename Scale::Net> Job<Scale>::new_base() const {
  pd::model::Progressive<Net> base(base_net(), schedule.size());
  pd::Generator gen(o.seed, 0x494e4954u);  // "INIT"
  base.initialize(gen);
  return base;
}

template <class Scale>
typename Scale::Recipe::template Trained<pd::model::Progressive<typename Scale::Net>> Job<Scale>::stage1(
    std::int64_t steps) {
  if constexpr (kPlainDdpm) {
    if (!o.base_from.empty()) return imported_base();
  }
  auto base = Recipe::wrap(new_base(), recipe_settings(o));
  auto options = train_options(o, "stage1", steps, o.lr);
  const auto r = timed(report, "stage 1: " + std::to_string(steps) + " steps on every timestep", [&] {
    return train_with_recipe<Recipe>(base, schedule, train, options, pd::train::BatchMode::PerGroup,
                                     recipe_settings(o));
  });
  report.stages.push_back({"stage 1", steps, steps * o.batch, final_losses(r, 1), options.csv_path, options.plot_path,
                           options.checkpoint_path});
  report.add_compute("stage 1", steps * o.batch, training_flops(static_cast<double>(steps * o.batch), base_flops()));
  pd::train::load_ema_weights(options.checkpoint_path, base, schedule);
  return base;
}

template <class Scale>
TimeBudgetPlan Job<Scale>::planned_time_budget() const {
  const fs::path path = o.out / "time_budget.json";
  if (auto recorded = read_time_budget(path)) {
    // A resumed run keeps its steps, whatever the machine does now.
    if (recorded->minutes != o.minutes)
      throw pd::ConfigError("--minutes " + minutes_text(o.minutes) + ": " + path.string() +
                            " holds the plan of --minutes " + minutes_text(recorded->minutes) +
                            "; resume with that budget or write to another --out");
    std::printf("--minutes: the plan recorded in %s: %lld stage-1 and %lld stage-2 steps\n", path.string().c_str(),
                static_cast<long long>(recorded->steps), static_cast<long long>(recorded->stage2_steps));
    return *recorded;
  }
  // The rate: stage-1 steps of the base as the recipe trains it, on the run's batch, timed after
  // two warm-up steps, for about five seconds. Nothing is written.
  const auto start = Clock::now();
  auto model = Recipe::wrap(new_base(), recipe_settings(o));
  auto options = train_options(o, "time_budget", 2, o.lr);
  options.checkpoint_path.clear(), options.csv_path.clear(), options.plot_path.clear();
  options.progress.mode = pd::train::ProgressOptions::Mode::Off;
  auto seconds_of = [&](std::int64_t steps) {
    options.steps = steps;
    const auto start = Clock::now();
    train_with_recipe<Recipe>(model, schedule, train, options, pd::train::BatchMode::PerGroup, recipe_settings(o));
    return seconds_since(start);
  };
  const double warm = seconds_of(2) / 2.0;
  const std::int64_t timed_steps = std::clamp<std::int64_t>(std::llround(5.0 / std::max(warm, 1e-3)), 3, 50);
  const double forward = base_flops();
  const double rate = static_cast<double>(timed_steps) * training_flops(static_cast<double>(o.batch), forward) /
                      seconds_of(timed_steps);
  // The evaluation's forward passes: the sampler's calls for every generated image, the
  // per-group losses and the bits/dim estimate (the classifier's features are small beside them).
  const double calls = static_cast<double>(Recipe::call_timesteps(schedule, o.ddim_steps).size());
  const double nll_calls = static_cast<double>(o.nll_steps > 0 ? o.nll_steps : schedule.size());
  const double evaluation_images = static_cast<double>(std::max(o.grid, o.fid_samples)) * calls +
                                   static_cast<double>(o.loss_samples * partition.groups()) +
                                   static_cast<double>(o.nll_images) * nll_calls;
  const TimeBudgetPlan plan = plan_time_budget(o.minutes, rate, seconds_since(start), compute_budget(),
                                               evaluation_images * forward, o.steps, o.stage2_steps, cpu_model_name());
  fs::create_directories(o.out);
  write_time_budget(path, plan);
  std::printf(
      "--minutes %g: %.1f GFLOP/s measured in training (%s); evaluation about %.1f min; %lld stage-1 and %lld "
      "stage-2 steps (x%.3f), recorded in %s\n",
      o.minutes, rate / 1e9, plan.cpu.c_str(), plan.evaluation_seconds / 60.0, static_cast<long long>(plan.steps),
      static_cast<long long>(plan.stage2_steps), plan.scale, path.string().c_str());
  return plan;
}

template <class Scale>
pd::model::Progressive<typename Scale::Net> Job<Scale>::imported_base() {
  // A model trained elsewhere (diffusers' UNet2DModel) is the base; its weights are used as
  // they are, and a pipeline's scheduler must be the job's schedule.
  auto imported = timed(report, "stage 1: imported from " + o.base_from.string(),
                        [&] { return pd::interop::import_diffusers_base<Net>(o.base_from, schedule); });
  std::printf("imported %s: %lld parameters, widths %lld .. %lld, %.2f MFLOPs per image\n",
              imported.folder.string().c_str(), static_cast<long long>(imported.base.parameter_count()),
              static_cast<long long>(imported.config.block_out_channels.front()),
              static_cast<long long>(imported.config.block_out_channels.back()), base_flops() / 1e6);
  report.notes.push_back(
      "--base-from " + o.base_from.string() + ": stage 1 is the diffusers UNet2DModel of " + imported.folder.string() +
      " (block_out_channels " + nlohmann::json(imported.config.block_out_channels).dump() + "; --channels unused), " +
      (imported.schedule_checked ? std::string("its pipeline's scheduler checked against the job's schedule")
                                 : std::string("a model folder without a scheduler: assumed trained with the job's "
                                               "schedule (") +
                                       pd::interop::schedule_summary(schedule) + ", epsilon)"));
  report.checkpoint = imported.folder;
  return std::move(imported.base);
}

template <class Scale>
void Job<Scale>::experts() {
  auto base = stage1(o.steps);
  // A copy of the base per group (train::train_stage2's start), each fine-tuned on its own batch
  // below; a resumed run's trainer loads the groups' weights from the checkpoint.
  auto grouped = Recipe::wrap(pd::train::copy_into_groups(Recipe::inner(base), partition, o.seed), recipe_settings(o));
  if (o.stage2_steps == 0) {
    report.notes.push_back("--stage2-steps 0: the groups are copies of the base, not fine-tuned");
    evaluate<Recipe>(o, grouped, partition, schedule, train, test, report);
    return;
  }
  auto options = train_options(o, "stage2", o.stage2_steps, o.lr / 2);
  const auto r = timed(report,
                       "stage 2: " + std::to_string(o.stage2_steps) + " steps per group, " +
                           std::to_string(partition.groups()) + " groups",
                       [&] {
                         return train_with_recipe<Recipe>(grouped, schedule, train, options,
                                                          pd::train::BatchMode::PerGroup, recipe_settings(o));
                       });
  report.stages.push_back({"stage 2", o.stage2_steps, o.stage2_steps * o.batch * partition.groups(),
                           final_losses(r, partition.groups()), options.csv_path, options.plot_path,
                           options.checkpoint_path});
  const std::int64_t stage2_images = o.stage2_steps * o.batch * partition.groups();
  report.add_compute("stage 2 (copies)", stage2_images,
                     training_flops(static_cast<double>(stage2_images), base_flops()));
  pd::train::load_ema_weights(options.checkpoint_path, grouped, schedule);
  report.checkpoint = options.checkpoint_path;
  evaluate<Recipe>(o, grouped, partition, schedule, train, test, report);
}

/// Pruning evaluations of TDC group g: forward passes over the validation images, one per scheme
/// in its memory bank (read from the file, so a resumed run counts what earlier runs evaluated),
/// and the pipeline's two losses (after pruning and after fine-tuning) of the chosen net.
inline double tdc_selection_flops(const fs::path& bank, std::int64_t eval_samples, double chosen_flops) {
  double flops = 2.0 * static_cast<double>(eval_samples) * chosen_flops;
  if (!fs::exists(bank)) return flops;  // no search ran: a criterion's pruning, or a group reused
  // The bank is the pipeline's own file: one that does not parse would undercount the compute
  // report, so it is an error naming the file rather than a silent zero.
  const nlohmann::json j = pd::read_json_file(bank, "TDC memory bank");
  if (!j.contains("entries") || !j["entries"].is_array())
    throw pd::FormatError("TDC memory bank " + bank.string() + ": no \"entries\" array");
  for (const auto& e : j["entries"]) {
    if (!e.contains("flops") || !e["flops"].is_number())
      throw pd::FormatError("TDC memory bank " + bank.string() + ": an entry without a numeric \"flops\"");
    if (e.value("source", std::string()) != "unpruned")
      flops += static_cast<double>(eval_samples) * e["flops"].get<double>();
  }
  return flops;
}

template <class Scale>
void Job<Scale>::tdc() {
  auto base = stage1(o.steps);
  pd::tdc::TdcOptions t;
  t.out_dir = o.out / "tdc";
  t.pruning = pd::tdc::parse_tdc_pruning(o.pruning);
  t.only_group = o.tdc_group;
  t.seed = o.seed;
  t.validation_images = validation.count;
  if (!o.proxy_command.empty()) {
    const std::string command = o.proxy_command;
    t.make_proxy = [command](std::int64_t, std::uint64_t) { return pd::prune::ExternalProxy::command(command); };
    t.proxy_name = "command";
  }
  const bool prunes = t.pruning != pd::tdc::TdcPruning::None;
  const double base_f = base_flops();
  std::int64_t stage2_steps = o.stage2_steps;
  if (o.equal_compute) {
    // Stage 2 gets what stage 1 and the pruning leave of the budget, planned on the groups'
    // FLOPs limits (a pruned net lands at or just below its limit).
    double per_image = 0.0, selection = 0.0;
    for (double b : partition.budgets) {
      const double f = (prunes ? b : 1.0) * base_f;
      per_image += f;
      if (!prunes || b >= 1.0) continue;
      if (t.pruning == pd::tdc::TdcPruning::Proxy)
        selection += static_cast<double>(t.proxy_rounds) * static_cast<double>(t.proxy_candidates) *
                     static_cast<double>(t.eval_samples) * f;
      else if (t.pruning == pd::tdc::TdcPruning::Taylor || t.pruning == pd::tdc::TdcPruning::DiffPruning)
        selection += training_flops(static_cast<double>(t.importance_batches * t.importance_batch_size), base_f);
      selection += 2.0 * static_cast<double>(t.eval_samples) * f;
    }
    const double left = compute_budget() - training_flops(static_cast<double>(o.steps * o.batch), base_f) - selection;
    stage2_steps =
        std::max<std::int64_t>(0, std::llround(left / training_flops(static_cast<double>(o.batch), per_image)));
    report.notes.push_back("--equal-compute: " + std::to_string(stage2_steps) +
                           " fine-tuning steps per group, what stage 1 and the pruning leave of the budget");
  }
  t.finetune = train_options(o, "tdc", stage2_steps, o.lr / 2);
  auto r = timed(
      report, "TDC stage 2 (" + o.pruning + " pruning): " + std::to_string(stage2_steps) + " steps per group", [&] {
        return pd::tdc::run_tdc(base, partition, schedule, train, validation, t, Recipe::objective(recipe_settings(o)));
      });
  for (const auto& g : r.report.groups) {
    std::printf(
        "group %lld [%lld, %lld): budget %.3f, %.2f MFLOPs (limit %.2f), %lld parameters, validation loss %.5f\n",
        static_cast<long long>(g.group), static_cast<long long>(g.begin), static_cast<long long>(g.end), g.budget,
        static_cast<double>(g.flops) / 1e6, g.flops_limit / 1e6, static_cast<long long>(g.parameters),
        g.finetuned_loss);
    const double f = static_cast<double>(g.flops);
    const std::string name = "group " + std::to_string(g.group);
    if (prunes && g.budget < 1.0) {
      double selection =
          tdc_selection_flops(t.out_dir / ("group" + std::to_string(g.group)) / "memory_bank.json", t.eval_samples, f);
      if (t.pruning == pd::tdc::TdcPruning::Taylor || t.pruning == pd::tdc::TdcPruning::DiffPruning)
        selection += training_flops(static_cast<double>(t.importance_batches * t.importance_batch_size), base_f);
      report.add_compute(name + ": pruning (" + o.pruning + ")", 0, selection);
    }
    report.add_compute(name + ": fine-tuning", stage2_steps * o.batch,
                       training_flops(static_cast<double>(stage2_steps * o.batch), f));
  }
  if (!r.model) {
    std::printf("group %lld done; run again without --tdc-group to assemble and evaluate\n",
                static_cast<long long>(o.tdc_group));
    report.notes.push_back("--tdc-group " + std::to_string(o.tdc_group) +
                           ": this run pruned and fine-tuned one group and evaluated nothing");
    return;
  }
  report.base_flops = static_cast<double>(r.report.base_flops);
  report.base_parameters = r.report.base_parameters;
  report.checkpoint = t.out_dir;
  evaluate<Recipe>(o, *r.model, partition, schedule, train, test, report);
}

template <class Scale>
void Job<Scale>::unified() {
  // As many training images as stage 1 and stage 2 of the experts see together: the same
  // training FLOPs, since the one net is the base.
  const std::int64_t steps = o.steps + o.stage2_steps * partition.groups();
  auto base = stage1(steps);
  report.checkpoint = o.out / "stage1.safetensors";
  evaluate<Recipe>(o, base, partition, schedule, train, test, report);
}

/// Trains an interval-routed model (shared encoder or separate experts) on mixed batches for
/// the steps the options give, or, with --equal-compute, for the steps that spend the budget at
/// the model's average FLOPs per image (mixed batches draw timesteps uniformly).
template <class Recipe, class Model>
void train_routed(const Options& o, const typename Recipe::Schedule& schedule, const pd::data::ImageDataset& train,
                  const pd::group::Partition& partition, double budget, const std::string& stage,
                  const std::string& title, Model& model, Report& report) {
  const double average = model.average_flops(pd::Shape{1, 1, 32, 32});
  const std::int64_t steps =
      o.equal_compute ? steps_for_budget(budget, o.batch, average) : o.steps + o.stage2_steps * partition.groups();
  auto options = train_options(o, stage, steps, o.lr);
  const auto r = timed(report, title + ": " + std::to_string(steps) + " steps on mixed batches", [&] {
    return train_with_recipe<Recipe>(model, schedule, train, options, pd::train::BatchMode::Mixed, recipe_settings(o));
  });
  report.stages.push_back({title, steps, steps * o.batch, final_losses(r, partition.groups()), options.csv_path,
                           options.plot_path, options.checkpoint_path});
  report.add_compute(title, steps * o.batch, training_flops(static_cast<double>(steps * o.batch), average));
  pd::train::load_ema_weights(options.checkpoint_path, model, schedule);
  report.checkpoint = options.checkpoint_path;
}

template <class Scale>
void Job<Scale>::multi_stage() {
  using Multi = typename Scale::Multi;
  const auto config = net_config(o, Multi::default_config());
  const auto widths = Multi::default_widths(o.channels, decoder_bases(o.channels, partition.groups()));
  auto model = Recipe::wrap(pd::model::IntervalRouted<Multi>(Multi(widths, config), partition), recipe_settings(o));
  pd::Generator gen(o.seed, 0x494e4954u);
  model.initialize(gen);
  train_routed<Recipe>(o, schedule, train, partition, compute_budget(), "multi_stage", "multi-stage", model, report);
  evaluate<Recipe>(o, model, partition, schedule, train, test, report);
}

template <class Scale>
void Job<Scale>::separate() {
  using Experts = typename Scale::Experts;
  const auto config = net_config(o, Net::default_config());
  const std::vector<pd::unet::WidthTable> widths(static_cast<std::size_t>(partition.groups()),
                                                 Net::default_widths(o.channels));
  auto model = Recipe::wrap(pd::model::IntervalRouted<Experts>(Experts(widths, config), partition), recipe_settings(o));
  pd::Generator gen(o.seed, 0x494e4954u);
  model.initialize(gen);
  train_routed<Recipe>(o, schedule, train, partition, compute_budget(), "separate", "separate experts", model, report);
  evaluate<Recipe>(o, model, partition, schedule, train, test, report);
}

}  // namespace job

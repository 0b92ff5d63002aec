#pragma once
// TDC stage 2 with pruning (Step-Adaptive Training, sec. 4.3; TDC Training, Algorithm 1): the
// trained base model becomes a progressive model, one pruned and fine-tuned denoiser per
// timestep group.
//
// For each group g of the partition (its budget a fraction of the base's FLOPs, as
// group::FlopsIntervalGrouper sets it, eq. 9):
//   1. prune the base to budget_g * FLOPs(base) by the chosen criterion (tdc/pruning.hpp,
//      eqs. 12, 14-17), recording schemes in the group's memory bank;
//   2. fine-tune the pruned denoiser on the group's timesteps only (eq. 13), with the training
//      objective the base was trained with (a type: train/objective.hpp);
//   3. mark the group done.
// Then the groups' denoisers are assembled into one model::Progressive (an EDM base: the
// preconditioned wrapper around it).
//
// The entry point a main job calls:
//
//   tdc::TdcOptions o;
//   o.out_dir = "run/tdc";  o.pruning = tdc::TdcPruning::Proxy;  o.finetune = finetune_options;
//   tdc::TdcResult<Net> r = tdc::run_tdc(base, partition, schedule, train_data, o);
//   (the last o.validation_images training images select the pruning schemes and are not
//   trained on: tdc/validation.hpp; the test split plays no part)
//   r.model->predict(x, timesteps);           // the assembled progressive model
//   r.report.groups[g].flops, .parameters;  r.report.average_flops / r.report.base_flops
//
// The objective: train::SimpleObjective (L_simple) by default; a base with a learned variance
// (unet::LearnedVariance, 2C outputs, IDDPM) is fine-tuned with IDDPM's hybrid objective:
//   tdc::run_tdc(base, partition, schedule::Cosine<4000>(), fit, validation, o, train::HybridObjective{});
// Pruning keeps conv_out's 2C output channels (they are in no channel group), and schemes are
// scored by the loss of the prediction head whatever the objective (tdc/prediction_head_loss.hpp).
//
// An EDM base, model::EdmPreconditioned<model::Progressive<Net>> trained with train::EdmObjective
// on a schedule::EdmSigma grid, goes through the same pipeline (TdcBaseModel below):
//   tdc::run_tdc(edm_base, partition, grid.schedule(), fit, validation, o);   // train::EdmObjective{}
// the inner Net is pruned, its schemes scored by F's MSE against EDM's effective target, which is
// EDM's lambda-weighted loss of D (tdc/group_loss.hpp, EdmNoising); each group fine-tunes as the
// wrapper around a one-group model on EDM's log-normal sigmas restricted to the group's grid
// timesteps; the assembled result is the wrapper over the partition, routing each sample by sigma.
//
// The base may be a model trained elsewhere: interop::import_diffusers_base<Net>(dir, schedule).base
// is a diffusers UNet2DModel folder as a one-group model (interop/diffusers_base.hpp).
//
// On disk, out_dir/tdc.json records the partition, budgets, criterion and (unless L_simple) the
// objective (a rerun with others is a ConfigError), and out_dir/group<g>/ holds
//   memory_bank.json         the pruning schemes evaluated for the group (prune/memory_bank.hpp)
//   pruned.safetensors       the pruned denoiser before fine-tuning
//   checkpoint.safetensors   the fine-tuning checkpoint (io/checkpoint.hpp), written every
//                            finetune.checkpoint_every steps and at the end
//   finetune.csv, finetune.png   the fine-tuning loss log and plot
//   done.json                written (atomically) only once the group's fine-tuning finished
// so a killed run, started again with the same arguments, skips finished groups, resumes a
// group's fine-tuning from its checkpoint (bit for bit, as train::Trainer does), reuses a pruned
// denoiser, and resumes an interrupted proxy search from its memory bank.
//
// Parallel processes: with options.only_group = g each process prunes and fine-tunes group g
// alone; groups draw nothing from one another (every seed is derived from the group index), so
// a last run without only_group finds every group done and assembles exactly the model one
// process would have built.
//
// Each group trains as a one-group model over the whole schedule (so its checkpoint is an
// ordinary progressive checkpoint) whose timestep sampler draws only the group's timesteps.
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/json_file.hpp"
#include "progdiff/io/atomic_file.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/edm_preconditioning.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/tdc/group_loss.hpp"
#include "progdiff/tdc/importance.hpp"
#include "progdiff/tdc/options.hpp"
#include "progdiff/tdc/pruning.hpp"
#include "progdiff/train/edm_objective.hpp"
#include "progdiff/train/hybrid_objective.hpp"
#include "progdiff/train/log_normal_timesteps.hpp"
#include "progdiff/train/trainer.hpp"

namespace progdiff::tdc {

/// A sampler of a one-group model over [0, T) that draws only from a sub-range [begin, end):
/// the timesteps of one TDC group, through `inner` (a sampler of [begin, end)).
class SubrangeTimesteps {
 public:
  SubrangeTimesteps(train::AnyTimestepSampler inner, std::int64_t timesteps)
      : inner_(std::move(inner)), size_(timesteps) {
    const auto [b, e] = inner_.range();
    require(b >= 0 && e <= timesteps && b < e, "SubrangeTimesteps: the sub-range [" + std::to_string(b) + ", " +
                                                   std::to_string(e) + ") is not inside [0, " +
                                                   std::to_string(timesteps) + ")");
  }
  train::TimestepDraw draw(Generator& gen, std::int64_t count) { return inner_.draw(gen, count); }
  std::pair<std::int64_t, std::int64_t> range() const { return {0, size_}; }
  void record(std::span<const std::int64_t> timesteps, std::span<const double> losses) {
    inner_.record(timesteps, losses);
  }

 private:
  train::AnyTimestepSampler inner_;
  std::int64_t size_;
};

/// What the pipeline does with its base model, by the objective the base was trained with. The
/// variance-preserving objectives (train::SimpleObjective, train::HybridObjective): the base is
/// model::Progressive<Net> itself, its groups are scored on the schedule's x_t with the target of
/// its prediction type, and fine-tuned on timesteps drawn uniformly from the group.
template <class Net, class Schedule, class Objective>
struct TdcBaseModel {
  using Model = model::Progressive<Net>;
  /// The progressive model whose single denoiser is pruned (the model itself).
  static model::Progressive<Net>& groups(Model& m) { return m; }
  static const model::Progressive<Net>& groups(const Model& m) { return m; }
  /// `p` as a model of the base's kind.
  static Model like(const Model&, model::Progressive<Net> p) { return p; }
  static ScheduleNoising<Schedule> noising(const Model& base, const Schedule& s) { return {s, base.prediction_type()}; }
  /// The fine-tuning sampler of a group's timesteps [begin, end).
  static train::AnyTimestepSampler sampler(const Model&, const Objective&, std::int64_t begin, std::int64_t end) {
    return train::UniformTimesteps(begin, end);
  }
  static void check(const Model&, const Schedule&, const Objective&) {}
};

/// An EDM base (train::EdmObjective, or a type derived from it): model::EdmPreconditioned<
/// model::Progressive<Net>>. The inner
/// Net, F of D = c_skip x + c_out F(c_in x; c_noise), is pruned and scored by its MSE against
/// EDM's effective target, which is EDM's loss of D (EdmNoising, tdc/group_loss.hpp); each group
/// fine-tunes as the same wrapper around a one-group model, with EDM's log-normal sigmas
/// restricted to the group's grid timesteps, and the assembled wrapper routes each sample by sigma.
template <class Net, class Schedule, class Objective>
requires std::derived_from<Objective, train::EdmObjective>
struct TdcBaseModel<Net, Schedule, Objective> {
  static_assert(std::is_same_v<Schedule, schedule::EDM>,
                "progdiff::tdc: an EDM base (train::EdmObjective) is fine-tuned on its sigma grid's schedule; use "
                "tdc::TdcPipeline<Net, schedule::EDM, train::EdmObjective> with base.grid().schedule()");
  using Model = model::EdmPreconditioned<model::Progressive<Net>>;
  static model::Progressive<Net>& groups(Model& m) { return m.inner(); }
  static const model::Progressive<Net>& groups(const Model& m) { return m.inner(); }
  static Model like(const Model& base, model::Progressive<Net> p) {
    return Model(std::move(p), base.grid(), base.preconditioning());
  }
  static EdmNoising noising(const Model& base, const Schedule&) { return {base.preconditioning(), base.grid()}; }
  /// The log-normal of the objective restricted to [begin, end), with weight 1: the group trains
  /// alone, so the mass weight that balances groups in mixed batches would only rescale its
  /// logged loss (and, for a group with little log-normal mass, shrink it against AdamW's epsilon).
  static train::AnyTimestepSampler sampler(const Model& base, const Objective& objective, std::int64_t begin,
                                           std::int64_t end) {
    train::LogNormalSigmaConfig c = objective.sigmas;
    c.group_mass_weights = false;
    return train::LogNormalTimesteps(base.grid(), begin, end, c);
  }
  static void check(const Model& base, const Schedule& s, const Objective& objective) {
    require(objective.sigma_data == base.preconditioning().sigma_data,
            "TDC: train::EdmObjective's sigma_data " + std::to_string(objective.sigma_data) +
                " differs from the EDM base's preconditioning (" + std::to_string(base.preconditioning().sigma_data) +
                ")");
    const schedule::EdmSigma& grid = base.grid();
    const std::int64_t last = grid.size() - 1;
    require(static_cast<std::int64_t>(s.size()) == grid.size() &&
                std::abs(s.sigma(0) - grid.sigma_at(0.0)) <= 1e-9 * grid.sigma_at(0.0) &&
                std::abs(s.sigma(last) - grid.sigma_at(static_cast<double>(last))) <=
                    1e-9 * grid.sigma_at(static_cast<double>(last)),
            "TDC: the schedule given is not the EDM base's sigma grid (" + std::to_string(grid.size()) +
                " timesteps, sigma " + std::to_string(grid.sigma_min()) + " .. " + std::to_string(grid.sigma_max()) +
                "); pass base.grid().schedule()");
  }
};

/// The name tdc.json records for the fine-tuning objective: "simple" (train::SimpleObjective, the
/// default, not recorded), "hybrid", "edm" (the library's objectives and types derived from them),
/// an objective's own `static constexpr const char* tdc_name`, or else "custom" (two different
/// objectives of one's own without a tdc_name are then not told apart).
template <class Objective>
constexpr const char* tdc_objective_name() {
  if constexpr (requires { Objective::tdc_name; })
    return Objective::tdc_name;
  else if constexpr (std::derived_from<Objective, train::SimpleObjective>)
    return "simple";
  else if constexpr (std::derived_from<Objective, train::HybridObjective>)
    return "hybrid";
  else if constexpr (std::derived_from<Objective, train::EdmObjective>)
    return "edm";
  else
    return "custom";
}

/// The assembled model (absent when only one group ran, or options.assemble is false) and the
/// report. Model is the base's kind: model::Progressive<Net>, or EDM's wrapper around it.
template <class Net, class Model = model::Progressive<Net>>
struct TdcResult {
  std::optional<Model> model;
  TdcReport report;
};

/// Called after every fine-tuning step of group `group`.
using TdcStepCallback = std::function<void(std::int64_t group, const train::StepInfo&)>;

/// Objective: what each group's fine-tuning minimises (train/objective.hpp), as train::Trainer
/// takes it; a model with a learned variance needs train::HybridObjective, an EDM base
/// (model::EdmPreconditioned<model::Progressive<Net>>) train::EdmObjective with Schedule
/// schedule::EDM (TdcBaseModel).
template <class Net, schedule::NoiseSchedule Schedule, class Objective = train::SimpleObjective>
class TdcPipeline {
 public:
  using T = typename Net::value_type;
  using B = typename Net::backend_type;
  using Base = TdcBaseModel<Net, Schedule, Objective>;
  /// The base's kind of model: each group's fine-tuning model and the assembled model.
  using GroupModel = typename Base::Model;
  static_assert(train::check_objective<Objective, GroupModel>());

  /// `base`: the stage-1 model (one group); `partition`: the groups with their FLOPs budgets
  /// (fractions of the base's FLOPs; no budgets: 1 each); `train_data` for importance batches
  /// and fine-tuning, `validation_data` for the loss that selects among pruning schemes and that
  /// the report quotes: images held out of the training split (data::split_validation,
  /// data/validation_split.hpp), never the test split. `criterion`, if set, scores channels in
  /// place of options.pruning's built-in criterion (tdc/importance.hpp). `objective` trains each
  /// pruned group.
  TdcPipeline(GroupModel& base, group::Partition partition, const Schedule& schedule,
              const data::ImageDataset& train_data, const data::ImageDataset& validation_data, TdcOptions options,
              AnyImportance<Net> criterion = {}, Objective objective = {})
      : base_(base),
        partition_(std::move(partition)),
        schedule_(schedule),
        train_data_(train_data),
        validation_data_(validation_data),
        options_(std::move(options)),
        criterion_(std::move(criterion)),
        objective_(std::move(objective)) {
    if (!criterion_ && options_.pruning != TdcPruning::None && options_.pruning != TdcPruning::Proxy)
      criterion_ = builtin_importance<Net>(options_.pruning);
    require(!criterion_ || options_.pruning != TdcPruning::Proxy,
            "TDC: a criterion '" + criterion_.name() +
                "' was given with options.pruning = proxy; set pruning to a "
                "score criterion (its name is then the criterion's)");
    require(base.group_count() == 1,
            "TDC: the base model must have one group, it has " + std::to_string(base.group_count()));
    partition_.validate(static_cast<std::int64_t>(schedule.size()));
    require(base.partition().size() == partition_.size(),
            "TDC: the partition covers " + std::to_string(partition_.size()) + " timesteps, the base model " +
                std::to_string(base.partition().size()));
    if (partition_.budgets.empty()) partition_.budgets.assign(static_cast<std::size_t>(partition_.groups()), 1.0);
    for (std::size_t g = 0; g < partition_.budgets.size(); ++g)
      require(partition_.budgets[g] > 0.0 && partition_.budgets[g] <= 1.0 + 1e-12,
              "TDC: group " + std::to_string(g) + " has budget " + std::to_string(partition_.budgets[g]) +
                  ", it must lie in (0, 1]");
    require(!options_.out_dir.empty(), "TDC: options.out_dir is empty");
    require(options_.only_group < partition_.groups(), "TDC: only_group " + std::to_string(options_.only_group) +
                                                           " is outside the " + std::to_string(partition_.groups()) +
                                                           " groups");
    train_data.validate("TDC training data");
    validation_data.validate("TDC validation data");
    Base::check(base, schedule, objective_);
    image_ = Shape{1, train_data.channels, train_data.height, train_data.width};
  }

  void on_step(TdcStepCallback callback) { callback_ = std::move(callback); }

  std::filesystem::path group_dir(std::int64_t g) const { return options_.out_dir / ("group" + std::to_string(g)); }
  std::filesystem::path bank_path(std::int64_t g) const { return group_dir(g) / "memory_bank.json"; }
  std::filesystem::path pruned_path(std::int64_t g) const { return group_dir(g) / "pruned.safetensors"; }
  std::filesystem::path checkpoint_path(std::int64_t g) const { return group_dir(g) / "checkpoint.safetensors"; }
  std::filesystem::path done_path(std::int64_t g) const { return group_dir(g) / "done.json"; }
  bool done(std::int64_t g) const { return std::filesystem::exists(done_path(g)); }
  const group::Partition& partition() const { return partition_; }
  std::int64_t base_flops() const { return Base::groups(base_).denoiser(0).flops(image_); }

  /// The sampler group g's fine-tuning draws its timesteps with (over the whole schedule, drawing
  /// only the group's): options.finetune.make_sampler's for the group if set, else the base kind's.
  train::AnyTimestepSampler group_sampler(std::int64_t g) const {
    require(g >= 0 && g < partition_.groups(),
            "TDC: group " + std::to_string(g) + " is outside the " + std::to_string(partition_.groups()) + " groups");
    return group_train_options(g).make_sampler(0, 0, partition_.size());
  }

  /// Every group (or only options.only_group), then the assembly (see the top of this file).
  TdcResult<Net, GroupModel> run() {
    write_manifest();
    TdcResult<Net, GroupModel> result;
    result.report.base_flops = base_flops();
    result.report.base_parameters = base_.parameter_count();
    for (std::int64_t g = 0; g < partition_.groups(); ++g)
      if (options_.only_group < 0 || options_.only_group == g) result.report.groups.push_back(run_group(g));
    if (options_.only_group < 0 && options_.assemble) {
      result.model.emplace(assemble());
      result.report.average_flops = result.model->average_flops(image_);
      result.report.total_parameters = result.model->parameter_count();
    }
    return result;
  }

  /// Prunes (or reuses the pruned denoiser of) group g, fine-tunes it (resuming a checkpoint)
  /// and marks it done; a group already done is only loaded.
  TdcGroupReport run_group(std::int64_t g) {
    require(g >= 0 && g < partition_.groups(),
            "TDC: group " + std::to_string(g) + " is outside the " + std::to_string(partition_.groups()) + " groups");
    write_manifest();
    std::filesystem::create_directories(group_dir(g));
    TdcGroupReport r = group_header(g);
    if (done(g)) {
      read_done(g, r);
      r.reused = true;
      return r;
    }
    const GroupBatches<T, B> held_out = held_out_set(g);
    r.pruned_loss = std::numeric_limits<double>::quiet_NaN();
    std::optional<GroupModel> m;
    if (std::filesystem::exists(checkpoint_path(g))) {
      m.emplace(model_from_file(g, checkpoint_path(g)));  // Trainer::run loads its weights
    } else if (std::filesystem::exists(pruned_path(g))) {
      m.emplace(model_from_file(g, pruned_path(g)));
      load_weights(g, pruned_path(g), *m, false);
    } else {
      const auto start = std::chrono::steady_clock::now();
      GroupPruningTask<T, B, decltype(Base::noising(base_, schedule_))> task{Base::noising(base_, schedule_),
                                                                             g,
                                                                             partition_.begin(g),
                                                                             partition_.end(g),
                                                                             r.flops_limit,
                                                                             image_,
                                                                             train_data_,
                                                                             held_out,
                                                                             bank_path(g)};
      GroupPruningResult<Net> pruned =
          prune_for_group(Base::groups(base_).denoiser(0), options_.pruning, criterion_, task, options_);
      r.proxy_evaluations = pruned.evaluations;
      r.pruned_loss = held_out.loss(pruned.net);
      // dropout seeds as a reload from the group's files would draw them
      Generator gen = group_generator(g);
      m.emplace(Base::like(base_, model::Progressive<Net>(model::clone_net(pruned.net, gen), partition_.size(),
                                                          Base::groups(base_).prediction_type())));
      if (options_.proxy_sharing.rank == 0)
        io::save_checkpoint(pruned_path(g), *m, description(*m), io::TrainingState{});
      r.prune_seconds = seconds_since(start);
    }
    if (options_.prune_only) return r;
    const auto start = std::chrono::steady_clock::now();
    train::Trainer<GroupModel, Schedule, Objective> trainer(*m, schedule_, train_data_, group_train_options(g),
                                                            train::BatchMode::PerGroup, objective_);
    if (callback_) trainer.on_step([this, g](const train::StepInfo& info) { callback_(g, info); });
    try {
      trainer.run();
    } catch (const FormatError& e) {
      throw FormatError("TDC group " + std::to_string(g) + ": cannot resume from " + checkpoint_path(g).string() +
                        ": " + e.what() + " (remove the file to restart the group's fine-tuning)");
    } catch (const ShapeError& e) {
      throw FormatError("TDC group " + std::to_string(g) + ": cannot resume from " + checkpoint_path(g).string() +
                        ": " + e.what() + " (remove the file to restart the group's fine-tuning)");
    }
    r.finetune_seconds = seconds_since(start);
    if (options_.use_ema_weights && options_.finetune.use_ema && options_.finetune.steps > 0) trainer.ema().copy_to(*m);
    r.flops = m->flops(image_, 0);
    r.parameters = m->parameter_count();
    r.finetuned_loss = held_out.loss(Base::groups(*m).denoiser(0));
    write_done(g, r);
    return r;
  }

  /// The progressive model of every group's fine-tuned denoiser; ConfigError naming the groups
  /// that are not done.
  GroupModel assemble() {
    std::string missing;
    for (std::int64_t g = 0; g < partition_.groups(); ++g)
      if (!done(g)) missing += (missing.empty() ? "" : ", ") + std::to_string(g);
    if (!missing.empty())
      throw ConfigError("TDC: cannot assemble the progressive model, group(s) " + missing + " of " +
                        options_.out_dir.string() + " have not finished");
    std::vector<Net> nets;
    for (std::int64_t g = 0; g < partition_.groups(); ++g) {
      GroupModel m = load_group(g);
      nets.push_back(std::move(Base::groups(m).denoiser(0)));
    }
    return Base::like(base_,
                      model::Progressive<Net>(partition_, std::move(nets), Base::groups(base_).prediction_type()));
  }

  /// Group g's fine-tuned denoiser as a one-group model (the EMA weights when options say so).
  GroupModel load_group(std::int64_t g) {
    const bool trained = std::filesystem::exists(checkpoint_path(g));
    const std::filesystem::path file = trained ? checkpoint_path(g) : pruned_path(g);
    GroupModel m = model_from_file(g, file);
    load_weights(g, file, m, trained && options_.use_ema_weights && options_.finetune.use_ema);
    return m;
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

  TdcGroupReport group_header(std::int64_t g) const {
    TdcGroupReport r;
    r.group = g;
    r.begin = partition_.begin(g);
    r.end = partition_.end(g);
    r.budget = partition_.budgets[static_cast<std::size_t>(g)];
    r.flops_limit = r.budget * static_cast<double>(base_flops());
    return r;
  }

  GroupBatches<T, B> held_out_set(std::int64_t g) const {
    return GroupBatches<T, B>::held_out(Base::noising(base_, schedule_), validation_data_, partition_.begin(g),
                                        partition_.end(g), options_.eval_samples, options_.eval_batch_size,
                                        options_.seed, kTdcHeldOutStream + 2 * static_cast<std::uint64_t>(g));
  }

  train::TrainOptions group_train_options(std::int64_t g) const {
    train::TrainOptions t = options_.finetune;
    t.seed = options_.finetune.seed + 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(g + 1);
    t.checkpoint_path = checkpoint_path(g);
    t.csv_path = group_dir(g) / "finetune.csv";
    t.plot_path = group_dir(g) / "finetune.png";
    t.resume = true;
    const std::int64_t begin = partition_.begin(g), end = partition_.end(g), size = partition_.size();
    const train::SamplerFactory inner = options_.finetune.make_sampler;
    t.make_sampler = [this, inner, g, begin, end, size](std::int64_t, std::int64_t, std::int64_t) {
      train::AnyTimestepSampler s = inner ? inner(g, begin, end) : Base::sampler(base_, objective_, begin, end);
      return train::AnyTimestepSampler(SubrangeTimesteps(std::move(s), size));
    };
    return t;
  }

  io::ModelDescription description(const GroupModel& m) const {
    io::ModelDescription d = m.describe();
    model::describe_schedule(d, schedule_);
    return d;
  }

  // The dropout seeds of group g's denoiser, whether it was just pruned or is read from a file.
  Generator group_generator(std::int64_t g) const {
    return Generator(options_.seed, 0x54444347u + static_cast<std::uint64_t>(g));  // "TDCG"
  }

  // A one-group model of the widths `file` describes; FormatError naming the group and file.
  GroupModel model_from_file(std::int64_t g, const std::filesystem::path& file) const {
    try {
      Generator gen = group_generator(g);
      return Base::like(base_, model::Progressive<Net>::from_description(io::read_safetensors(file).metadata, gen,
                                                                         Base::groups(base_).denoiser(0).config()));
    } catch (const Error& e) {
      throw FormatError("TDC group " + std::to_string(g) + ": " + file.string() +
                        " is not a readable group checkpoint: " + e.what() +
                        " (remove it to redo the group's step that wrote it)");
    }
  }

  void load_weights(std::int64_t g, const std::filesystem::path& file, GroupModel& m, bool ema) const {
    try {
      if (ema) {
        optim::Ema<T, B> average;
        io::load_checkpoint(file, m, description(m), static_cast<optim::AdamW<T, B>*>(nullptr), &average);
        average.copy_to(m);
      } else {
        io::load_checkpoint(file, m, description(m));
      }
    } catch (const Error& e) {
      throw FormatError("TDC group " + std::to_string(g) + ": " + file.string() +
                        " is not a readable group checkpoint: " + e.what());
    }
  }

  nlohmann::json manifest() const {
    nlohmann::json j;
    j["format"] = "progdiff.tdc";
    j["version"] = 1;
    j["starts"] = partition_.starts;
    j["budgets"] = partition_.budgets;
    j["pruning"] = criterion_ ? criterion_.name() : std::string(tdc_pruning_name(options_.pruning));
    // Recorded only for another proxy than the built-in one, so older runs' files still match.
    if (options_.pruning == TdcPruning::Proxy && options_.proxy_name != "search") j["proxy"] = options_.proxy_name;
    // Recorded only for another objective than L_simple, so older runs' files still match.
    if (std::string(tdc_objective_name<Objective>()) != "simple") j["objective"] = tdc_objective_name<Objective>();
    j["base_flops"] = base_flops();
    j["finetune_steps"] = options_.finetune.steps;
    return j;
  }

  // Writes out_dir/tdc.json, or checks it against this run's settings.
  void write_manifest() const {
    const nlohmann::json want = manifest();
    const std::filesystem::path path = options_.out_dir / "tdc.json";
    if (std::filesystem::exists(path)) {
      const nlohmann::json have = read_json_file(path, "TDC manifest");
      // Keys recorded only away from their defaults: present there and absent here is a mismatch too.
      for (const auto& [key, default_text] : {std::pair<const char*, const char*>{"proxy", "the built-in search"},
                                              std::pair<const char*, const char*>{"objective", "\"simple\""}})
        if (have.contains(key) && !want.contains(key))
          throw ConfigError("TDC: " + path.string() + " was written by a run with " + key + " = " + have[key].dump() +
                            ", this run has " + default_text + "; use another out_dir or remove it");
      for (const auto& [key, value] : want.items())
        if (!have.contains(key) || have[key] != value)
          throw ConfigError("TDC: " + path.string() + " was written by a run with " + key + " = " +
                            (have.contains(key) ? have[key].dump() : std::string("nothing")) + ", this run has " +
                            value.dump() + "; use another out_dir or remove it");
      return;
    }
    std::filesystem::create_directories(options_.out_dir);
    write_json(path, want);
  }

  static void write_json(const std::filesystem::path& path, const nlohmann::json& j) {
    const std::string text = j.dump(2) + "\n";
    io::write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
  }

  void write_done(std::int64_t g, const TdcGroupReport& r) const {
    nlohmann::json j;
    j["group"] = g;
    j["flops"] = r.flops;
    j["parameters"] = r.parameters;
    j["pruned_loss"] = std::isfinite(r.pruned_loss) ? nlohmann::json(r.pruned_loss) : nlohmann::json();
    j["finetuned_loss"] = r.finetuned_loss;
    j["steps"] = options_.finetune.steps;
    write_json(done_path(g), j);
  }

  void read_done(std::int64_t g, TdcGroupReport& r) const {
    const nlohmann::json j = read_json_file(done_path(g), "TDC group " + std::to_string(g) + " record");
    try {
      r.flops = j.at("flops").get<std::int64_t>();
      r.parameters = j.at("parameters").get<std::int64_t>();
      r.pruned_loss =
          j.at("pruned_loss").is_null() ? std::numeric_limits<double>::quiet_NaN() : j.at("pruned_loss").get<double>();
      r.finetuned_loss = j.at("finetuned_loss").get<double>();
    } catch (const nlohmann::json::exception& e) {
      throw FormatError("TDC group " + std::to_string(g) + ": " + done_path(g).string() + ": " + e.what());
    }
  }

  GroupModel& base_;
  group::Partition partition_;
  const Schedule& schedule_;
  const data::ImageDataset& train_data_;
  const data::ImageDataset& validation_data_;
  TdcOptions options_;
  AnyImportance<Net> criterion_;
  Objective objective_;
  Shape image_;
  TdcStepCallback callback_;
};

/// Runs the TDC pipeline (see the top of this file) and returns the assembled progressive model
/// with per-group FLOPs, parameters and losses, and the average FLOPs against the base.
/// `validation_data` selects among pruning schemes: carve it from the training split
/// (tdc/validation.hpp also has a run_tdc that does so), never pass the test split.
template <class Net, schedule::NoiseSchedule Schedule>
TdcResult<Net> run_tdc(model::Progressive<Net>& base, group::Partition partition, const Schedule& schedule,
                       const data::ImageDataset& train_data, const data::ImageDataset& validation_data,
                       const TdcOptions& options, TdcStepCallback on_step = {}) {
  TdcPipeline<Net, Schedule> pipeline(base, std::move(partition), schedule, train_data, validation_data, options);
  pipeline.on_step(std::move(on_step));
  return pipeline.run();
}

/// The same with each group fine-tuned by `objective` (train/objective.hpp) in place of L_simple:
/// train::HybridObjective for a base with a learned variance (IDDPM).
template <class Net, schedule::NoiseSchedule Schedule, train::ObjectiveFor<model::Progressive<Net>> Objective>
TdcResult<Net> run_tdc(model::Progressive<Net>& base, group::Partition partition, const Schedule& schedule,
                       const data::ImageDataset& train_data, const data::ImageDataset& validation_data,
                       const TdcOptions& options, Objective objective, TdcStepCallback on_step = {}) {
  TdcPipeline<Net, Schedule, Objective> pipeline(base, std::move(partition), schedule, train_data, validation_data,
                                                 options, AnyImportance<Net>{}, std::move(objective));
  pipeline.on_step(std::move(on_step));
  return pipeline.run();
}

/// The same for an EDM base (model::EdmPreconditioned<model::Progressive<Net>>, trained with
/// train::EdmObjective): `schedule` is base.grid().schedule(); the assembled model is the same
/// wrapper around the groups' progressive model, routing each sample by sigma.
template <class Net, schedule::NoiseSchedule Schedule, class Objective = train::EdmObjective>
TdcResult<Net, model::EdmPreconditioned<model::Progressive<Net>>> run_tdc(
    model::EdmPreconditioned<model::Progressive<Net>>& base, group::Partition partition, const Schedule& schedule,
    const data::ImageDataset& train_data, const data::ImageDataset& validation_data, const TdcOptions& options,
    Objective objective = {}, TdcStepCallback on_step = {}) {
  static_assert(std::derived_from<Objective, train::EdmObjective>,
                "progdiff::tdc: an EDM base (model::EdmPreconditioned) is fine-tuned with the loss it was trained "
                "with, train::EdmObjective");
  TdcPipeline<Net, Schedule, Objective> pipeline(base, std::move(partition), schedule, train_data, validation_data,
                                                 options, AnyImportance<Net>{}, std::move(objective));
  pipeline.on_step(std::move(on_step));
  return pipeline.run();
}

/// The same with an importance criterion of one's own (tdc/importance.hpp) in place of
/// options.pruning's; options.pruning must then name a score criterion, not none or proxy.
template <class Net, schedule::NoiseSchedule Schedule>
TdcResult<Net> run_tdc(model::Progressive<Net>& base, group::Partition partition, const Schedule& schedule,
                       const data::ImageDataset& train_data, const data::ImageDataset& validation_data,
                       const TdcOptions& options, AnyImportance<Net> criterion, TdcStepCallback on_step = {}) {
  require(static_cast<bool>(criterion), "run_tdc: the criterion given is empty");
  require(options.pruning != TdcPruning::None,
          "run_tdc: a criterion '" + criterion.name() + "' was given with options.pruning = none");
  TdcPipeline<Net, Schedule> pipeline(base, std::move(partition), schedule, train_data, validation_data, options,
                                      std::move(criterion));
  pipeline.on_step(std::move(on_step));
  return pipeline.run();
}

}  // namespace progdiff::tdc

#pragma once
// Trainer<Model, Schedule>: the training loop every stage uses (stage1.hpp, stage2.hpp,
// multi_stage.hpp) for any model::GroupedModel, on an ImageDataset with data::ShufflingBatches.
//
// One step, in BatchMode::PerGroup (groups share no parameters: Progressive):
//   for each group k: next batch x0; timesteps from group k's sampler (its timesteps only);
//     noise; x_t and target for the model's prediction type (diffusion_loss.hpp), weighted by the
//     loss weighting times the sampler's importance weight; forward, weighted MSE, backward;
//     finite guard on the loss and group k's gradients; clip group k's gradients to clip_norm
//   then one AdamW update at the scheduled learning rate, and the EMA update.
// In BatchMode::Mixed (a shared encoder: IntervalRouted<MultiDecoderUNet>) one batch mixes the
// groups: each sample's group is drawn with probability |group| / T, its timestep from that
// group's sampler; one forward and backward, the finite guard per group's own parameters and then
// the shared ones, one global clip.
//
// Around the steps: resume from options.checkpoint_path when it exists (weights, AdamW moments,
// EMA, step, the noise and timestep generators, the data iterator's position, each dropout
// layer's mask seed and count), checkpoints every checkpoint_every steps and at the end (atomic,
// io/checkpoint.hpp), and its observers (train/training_observer.hpp: by default a progress
// bar, a CSV log and a loss plot, each replaceable by a user's own). A resumed run computes
// exactly the losses of an uninterrupted one (importance samplers restart their loss history).
// A NaN or infinite loss or gradient throws NonFiniteError naming the step (1 = the first) and
// the group before anything is updated, so the last checkpoint stays valid.
//
// Dropout state: each nn::Dropout draws mask k from Philox (seed, stream = k) and counts its
// training forwards; for a model with visit_random_state(f, prefix) (UNet, MultiDecoderUNet,
// SeparateExperts, Progressive, IntervalRouted) each layer with p > 0 is saved as the generator
// "rng.dropout.<layer name>" = (mask seed, call count, 0) and restored, so even a model built
// with other dropout seeds resumes exactly. (Deriving the stream from the training step instead
// would need no state, but every caller that runs forward more than once a step, or outside
// this trainer, would have to pass a step and a call index down to every layer; the counters
// keep the layers self-contained and the checkpoint names each one.)
//
// Data-parallel training: the communicator type Comm (distributed/communicator.hpp) defaults
// to distributed::SingleProcess, whose exchanges compile away. With another (MpiCommunicator,
// NcclCommunicator) every rank runs this loop on the same global batch of options.batch_size:
// each rank draws the whole batch's data order, flips, timesteps and noise counters (cheap, and
// so identical everywhere), keeps its own contiguous rows (distributed/shard.hpp), and runs the
// forward and backward on them only. Sample i's noise is Philox (seed, stream, first + i * D)
// of the batch's one reservation, its flip is keyed by its dataset index and epoch, and its
// timestep is the i-th draw: the data a step sees does not depend on the number of ranks. Each
// rank scales its loss gradient by its share of the batch, the gradients are summed over ranks
// in buckets (distributed/gradient_buckets.hpp), and the per-sample losses too, so the finite
// guard, the clip, AdamW, the EMA and the timestep samplers see the global values on every
// rank. At the start every rank takes rank 0's weights and dropout seeds and counts; rank 0
// alone writes checkpoints, CSV log, plot and progress line, and every rank reads the checkpoint
// on resume, with any rank count.
// Dropout masks are keyed by sample too: before each forward the trainer gives the model the
// global index of its first row (nn::set_sample_offset), and a layer draws sample g's mask at
// Philox counters from g times the elements per sample (nn/dropout.hpp); a model that gathers
// a group's samples into a sub-batch keys them by their global indices. A rank whose rows hold
// no sample of a group does not run that group's layers, so after each forward every layer's
// mask count is taken from the ranks that ran it: the counts, and checkpoints, stay those of
// one process.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/data/batch_iterator.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/distributed/communicator.hpp"
#include "progdiff/distributed/gradient_buckets.hpp"
#include "progdiff/distributed/replicate.hpp"
#include "progdiff/distributed/shard.hpp"
#include "progdiff/distributed/single_process.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/model/grouped_model.hpp"
#include "progdiff/nn/dropout.hpp"
#include "progdiff/optim/grad_clip.hpp"
#include "progdiff/schedule/noise_schedule.hpp"
#include "progdiff/train/csv_log.hpp"
#include "progdiff/train/finite_guard.hpp"
#include "progdiff/train/loss_plot_observer.hpp"  // the built-in observer of TrainOptions::plot_path
#include "progdiff/train/objective.hpp"
#include "progdiff/train/trainer_options.hpp"

namespace progdiff::train {

enum class BatchMode { PerGroup, Mixed };

/// Philox streams of the trainer's generators, apart from the data iterator's (2e, 2e + 1).
inline constexpr std::uint64_t kNoiseStream = std::uint64_t{0x54524e4f} << 32;     // "TRNO"
inline constexpr std::uint64_t kTimestepStream = std::uint64_t{0x54525453} << 32;  // "TRTS"

/// The losses of a run, one entry per step taken by this call (after a resume: from the resumed step on).
struct TrainReport {
  std::int64_t first_step = 0;  // steps completed before this call (resumed from)
  std::vector<StepInfo> steps;
};

namespace detail {
// The parameters only group k uses, as a model for the finite guard and gradient clipping.
template <class M>
struct GroupParameters {
  M& model;
  std::int64_t group;
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    model.visit_group_parameters(group, f, prefix);
  }
};
}  // namespace detail

inline const std::string kDropoutState = "dropout.";  // checkpoint generator prefix of dropout layers

// The visitor shape of visit_random_state, for detecting models that have dropout layers.
inline constexpr auto dropout_visitor_probe = [](const std::string&, auto&) {};

/// Objective: what a step computes around the model's forward (train/objective.hpp): the MSE of
/// the model's prediction type by default, train::HybridObjective for a learned variance.
/// Comm: the processes that train together (distributed/communicator.hpp); one by default.
template <class Model, class Schedule, class Objective = SimpleObjective, class Comm = distributed::SingleProcess>
class Trainer {
  static_assert(model::check_grouped_model<Model>());
  static_assert(schedule::check_noise_schedule<Schedule>());
  static_assert(check_objective<Objective, Model>());

 public:
  using T = typename Model::value_type;
  using B = typename Model::backend_type;
  static_assert(distributed::check_communicator<Comm, B>());

  Trainer(Model& model, const Schedule& schedule, const data::ImageDataset& dataset, TrainOptions options,
          BatchMode mode, Objective objective = {}, Comm comm = {})
      : model_(model),
        schedule_(schedule),
        options_(std::move(options)),
        mode_(mode),
        batches_(dataset, data::BatchConfig{options_.batch_size, options_.seed, true, options_.random_flip, true}),
        optimizer_(options_.adamw),
        ema_(options_.ema),
        noise_(options_.seed, kNoiseStream),
        timesteps_(options_.seed, kTimestepStream),
        objective_(std::move(objective)),
        comm_(std::move(comm)),
        buckets_(options_.allreduce_bucket_bytes) {
    require(options_.steps >= 0, "Trainer: steps must be >= 0, got " + std::to_string(options_.steps));
    require(options_.checkpoint_every >= 0, "Trainer: checkpoint_every must be >= 0");
    require(model.partition().size() == static_cast<std::int64_t>(schedule.size()),
            "Trainer: the model's partition covers " + std::to_string(model.partition().size()) +
                " timesteps, the schedule has " + std::to_string(schedule.size()));
    require(mode == BatchMode::Mixed || !Model::shares_parameters,
            "Trainer: a model whose groups share parameters trains with BatchMode::Mixed");
    if (options_.lr.total_steps == 0) options_.lr.total_steps = options_.steps;
    const auto& p = model.partition();
    for (std::int64_t k = 0; k < p.groups(); ++k)
      samplers_.push_back(options_.make_sampler ? options_.make_sampler(k, p.begin(k), p.end(k))
                                                : default_sampler(k, p.begin(k), p.end(k)));
    for (std::int64_t k = 0; k < p.groups(); ++k)
      require(samplers_[static_cast<std::size_t>(k)].range() == std::pair{p.begin(k), p.end(k)},
              "Trainer: the sampler of group " + std::to_string(k) + " does not cover the group's timesteps [" +
                  std::to_string(p.begin(k)) + ", " + std::to_string(p.end(k)) + ")");
    if constexpr (!Comm::single_process) check_distributable();
  }

  /// Replaces group k's timestep sampler (it must cover the group's range).
  void set_sampler(std::int64_t k, AnyTimestepSampler sampler) {
    const auto& p = model_.partition();
    require(sampler.range() == std::pair{p.begin(k), p.end(k)},
            "Trainer::set_sampler: the sampler does not cover group " + std::to_string(k) + "'s timesteps");
    samplers_.at(static_cast<std::size_t>(k)) = std::move(sampler);
  }
  void on_step(StepCallback callback) { callback_ = std::move(callback); }

  /// The description stored in (and expected from) checkpoints: the model's and the schedule's.
  io::ModelDescription description() const {
    io::ModelDescription d = model_.describe();
    model::describe_schedule(d, schedule_);
    return d;
  }

  optim::AdamW<T, B>& optimizer() { return optimizer_; }
  Comm& communicator() { return comm_; }
  optim::Ema<T, B>& ema() { return ema_; }
  std::int64_t step() const { return step_; }

  /// Runs (or continues) the training up to options.steps.
  TrainReport run() {
    // rank 0's weights, dropout seeds and mask counts everywhere
    distributed::replicate_parameters(comm_, model_);
    if constexpr (has_dropout) distributed::replicate_random_state(comm_, model_);
    if (options_.use_ema) ema_.initialize(model_);
    step_ = 0;
    double seconds_before = 0.0;
    // rank 0 decides, so that no rank resumes while another starts afresh
    if (distributed::rank0_says(comm_, options_.resume && !options_.checkpoint_path.empty() &&
                                           std::filesystem::exists(options_.checkpoint_path)))
      seconds_before = restore();
    // rank 0 alone writes files (and tells the observers); if it cannot, every rank stops here
    // rather than wait for it
    TrainingObservers observers;
    std::exception_ptr failure;
    try {
      if (comm_.rank() == 0) {
        for (const auto* path : {&options_.checkpoint_path, &options_.csv_path, &options_.plot_path})
          if (path->has_parent_path()) std::filesystem::create_directories(path->parent_path());
        observers = observers_of_run();
        for (const auto& o : observers) o->begin(RunStart{step_, options_.steps, mode_ == BatchMode::Mixed});
      }
    } catch (...) {
      failure = std::current_exception();
    }
    if (distributed::any_rank(comm_, failure != nullptr)) {
      if (failure) std::rethrow_exception(failure);
      throw IoError("Trainer: rank 0 could not create its output files (its error output says why)");
    }
    model_.set_training(true);
    TrainReport report;
    report.first_step = step_;
    const auto start = std::chrono::steady_clock::now();
    try {
      while (step_ < options_.steps) {
        StepInfo info = mode_ == BatchMode::PerGroup ? per_group_step() : mixed_step();
        ++step_;
        info.step = step_;
        info.total = options_.steps;
        seconds_ = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!options_.checkpoint_path.empty() &&
            ((options_.checkpoint_every > 0 && step_ % options_.checkpoint_every == 0) || step_ == options_.steps)) {
          save();
          info.checkpointed = true;
        }
        for (const auto& o : observers) o->step(info, seconds_);
        report.steps.push_back(info);
        if (callback_) callback_(info);
      }
    } catch (...) {
      for (const auto& o : observers) o->interrupted();
      throw;
    }
    for (const auto& o : observers) o->end();
    return report;
  }

 private:
  // Uniform timesteps, or the objective's own distribution when it has one (train::EdmObjective).
  AnyTimestepSampler default_sampler(std::int64_t k, std::int64_t begin, std::int64_t end) const {
    if constexpr (requires { objective_.default_sampler(model_, k, begin, end); })
      return objective_.default_sampler(model_, k, begin, end);
    else
      return UniformTimesteps(begin, end);
  }

  // The losses of a whole (global) batch, whatever rows this rank computed.
  struct BatchLoss {
    double loss = 0.0;
    std::vector<double> per_sample;
  };

  // Rows [first_row, first_row + rows) of a batch's noise: the generator reserves the whole
  // batch's counters (on every rank), so sample i's noise is the same for any rank count.
  Tensor<T, B> draw_noise(const Shape& batch_shape, std::int64_t first_row, std::int64_t rows) {
    Shape shape = batch_shape;
    const auto per = static_cast<std::uint64_t>(batch_shape.numel() / batch_shape[0]);
    shape[0] = rows;
    Tensor<T, B> noise(shape);
    const std::uint64_t first = noise_.reserve(static_cast<std::uint64_t>(batch_shape.numel()));
    B::template normal<T>(noise.size(), noise_.seed(), noise_.stream(),
                          first + static_cast<std::uint64_t>(first_row) * per, noise.data());
    return noise;
  }

  void check_distributable() {
    require(options_.batch_size >= comm_.size(), "Trainer: the global batch of " + std::to_string(options_.batch_size) +
                                                     " samples cannot give each of " + std::to_string(comm_.size()) +
                                                     " ranks a sample");
  }

  static constexpr bool has_dropout = requires(Model & m) {
    m.visit_random_state(dropout_visitor_probe, std::string());
  };

  // The rows this process computes start at sample `first` of the global batch.
  void key_dropout(std::int64_t first) {
    if constexpr (has_dropout) nn::set_sample_offset(model_, static_cast<std::uint64_t>(first));
  }

  // Each dropout layer's mask count, in visiting order.
  std::vector<std::uint64_t> dropout_calls() {
    std::vector<std::uint64_t> calls;
    if constexpr (has_dropout)
      model_.visit_random_state([&](const std::string&, auto& dropout) { calls.push_back(dropout.calls()); },
                                std::string());
    return calls;
  }

  template <class View>
  void all_reduce_gradients(View& view) {
    if constexpr (!Comm::single_process) buckets_.all_reduce(comm_, view);
  }

  // A user's sampler must stay inside its group: a stray timestep would train another group.
  TimestepDraw checked_draw(std::int64_t k, std::int64_t count) {
    auto& sampler = samplers_[static_cast<std::size_t>(k)];
    TimestepDraw d = sampler.draw(timesteps_, count);
    const auto [begin, end] = sampler.range();
    require(static_cast<std::int64_t>(d.timesteps.size()) == count && d.weights.size() == d.timesteps.size(),
            "Trainer: the sampler of group " + std::to_string(k) + " returned " + std::to_string(d.timesteps.size()) +
                " timesteps and " + std::to_string(d.weights.size()) + " weights for " + std::to_string(count) +
                " samples");
    for (std::int64_t t : d.timesteps)
      require(t >= begin && t < end, "Trainer: the sampler of group " + std::to_string(k) + " drew timestep " +
                                         std::to_string(t) + ", outside the group's [" + std::to_string(begin) + ", " +
                                         std::to_string(end) + ")");
    return d;
  }

  void zero_grads() {
    model_.visit_parameters([](const std::string&, auto& p) { p.zero_grad(); }, std::string());
  }

  // One group's (or one mixed batch's) forward, loss and backward: of the whole batch in one
  // process; of this rank's rows otherwise, with the losses summed over the ranks.
  BatchLoss forward_backward(const Tensor<T, B>& x0, const TimestepDraw& draw) {
    const std::int64_t n = x0.dim(0);
    if constexpr (Comm::single_process) {
      key_dropout(0);
      const Tensor<T, B> noise = draw_noise(x0.shape(), 0, n);
      loss::LossResult<T, B> loss =
          objective_(schedule_, x0, noise, draw, model_.prediction_type(), options_.weighting,
                     [&](const Tensor<T, B>& x_t) { return model_.forward(x_t, draw.timesteps); });
      model_.backward(loss.grad);
      return {loss.loss, std::move(loss.per_sample)};
    } else {
      const distributed::Shard rows = distributed::shard_of(n, comm_.rank(), comm_.size());
      const auto b = static_cast<std::size_t>(rows.begin), e = static_cast<std::size_t>(rows.end);
      TimestepDraw mine;
      mine.timesteps.assign(draw.timesteps.begin() + b, draw.timesteps.begin() + e);
      mine.weights.assign(draw.weights.begin() + b, draw.weights.begin() + e);
      const Tensor<T, B> noise = draw_noise(x0.shape(), rows.begin, rows.size());
      key_dropout(rows.begin);
      const std::vector<std::uint64_t> calls = dropout_calls();
      loss::LossResult<T, B> loss =
          objective_(schedule_, x0.slice(rows.begin, rows.end), noise, mine, model_.prediction_type(),
                     options_.weighting, [&](const Tensor<T, B>& x_t) { return model_.forward(x_t, mine.timesteps); });
      // the objective's loss is the mean over the rows it saw: weight it by this rank's share,
      // so that the sum over ranks is the mean over the global batch (its gradient likewise)
      const double share = static_cast<double>(rows.size()) / static_cast<double>(n);
      B::template scale<T>(loss.grad.size(), static_cast<T>(share), loss.grad.data());
      model_.backward(loss.grad);
      // per-sample losses, the loss, then per dropout layer the masks this rank drew and whether
      // it drew any: a rank without the samples of a group skips its layers, the others advance
      // them alike (their counts started equal), and every rank takes their count
      const std::vector<std::uint64_t> after = dropout_calls();
      const std::size_t layers = calls.size(), at = static_cast<std::size_t>(n) + 1;
      std::vector<double> sums(at + 2 * layers, 0.0);
      std::copy(loss.per_sample.begin(), loss.per_sample.end(), sums.begin() + static_cast<std::ptrdiff_t>(b));
      sums[at - 1] = loss.loss * share;
      for (std::size_t l = 0; l < layers; ++l) {
        sums[at + l] = static_cast<double>(after[l] - calls[l]);
        sums[at + layers + l] = after[l] > calls[l] ? 1.0 : 0.0;
      }
      comm_.all_reduce_host(sums);
      if constexpr (has_dropout) {
        std::size_t l = 0;
        model_.visit_random_state(
            [&](const std::string&, auto& dropout) {
              const double ran = sums[at + layers + l];
              if (ran > 0.0) dropout.set_calls(calls[l] + static_cast<std::uint64_t>(std::llround(sums[at + l] / ran)));
              ++l;
            },
            std::string());
      }
      const double total = sums[at - 1];
      sums.resize(static_cast<std::size_t>(n));
      return {total, std::move(sums)};
    }
  }

  StepInfo per_group_step() {
    zero_grads();
    StepInfo info;
    for (std::int64_t k = 0; k < model_.group_count(); ++k) {
      auto& sampler = samplers_[static_cast<std::size_t>(k)];
      const auto batch = batches_.template next<T, B>();
      const TimestepDraw draw = checked_draw(k, batch.images.dim(0));
      const BatchLoss loss = forward_backward(batch.images, draw);
      detail::GroupParameters<Model> group{model_, k};
      all_reduce_gradients(group);
      check_finite(loss.loss, group, step_ + 1, std::to_string(k));
      if (options_.clip_norm > 0) optim::clip_grad_norm(group, options_.clip_norm);
      sampler.record(draw.timesteps, loss.per_sample);
      info.group_losses.push_back(loss.loss);
    }
    double sum = 0.0;
    for (double l : info.group_losses) sum += l;
    info.loss = sum / static_cast<double>(info.group_losses.size());
    update(info);
    return info;
  }

  StepInfo mixed_step() {
    zero_grads();
    const auto& p = model_.partition();
    const auto batch = batches_.template next<T, B>();
    const std::int64_t n = batch.images.dim(0);
    // each sample's group with probability |group| / T, then the group's timesteps in the sample's slots
    std::vector<std::int64_t> group(static_cast<std::size_t>(n));
    std::vector<std::vector<std::size_t>> slots(static_cast<std::size_t>(p.groups()));
    for (std::int64_t i = 0; i < n; ++i) {
      group[static_cast<std::size_t>(i)] =
          p.group_of(static_cast<std::int64_t>(timesteps_.below(static_cast<std::uint64_t>(p.size()))));
      slots[static_cast<std::size_t>(group[static_cast<std::size_t>(i)])].push_back(static_cast<std::size_t>(i));
    }
    TimestepDraw draw;
    draw.timesteps.resize(static_cast<std::size_t>(n));
    draw.weights.resize(static_cast<std::size_t>(n));
    for (std::int64_t k = 0; k < p.groups(); ++k) {
      const auto& s = slots[static_cast<std::size_t>(k)];
      if (s.empty()) continue;
      const TimestepDraw d = checked_draw(k, static_cast<std::int64_t>(s.size()));
      for (std::size_t j = 0; j < s.size(); ++j) {
        draw.timesteps[s[j]] = d.timesteps[j];
        draw.weights[s[j]] = d.weights[j];
      }
    }
    const BatchLoss loss = forward_backward(batch.images, draw);
    all_reduce_gradients(model_);
    StepInfo info;
    info.loss = loss.loss;
    for (std::int64_t k = 0; k < p.groups(); ++k) {
      const auto& s = slots[static_cast<std::size_t>(k)];
      double sum = 0.0;
      std::vector<std::int64_t> ts;
      std::vector<double> ls;
      for (std::size_t i : s) {
        sum += loss.per_sample[i];
        ts.push_back(draw.timesteps[i]);
        ls.push_back(loss.per_sample[i]);
      }
      info.group_losses.push_back(s.empty() ? std::numeric_limits<double>::quiet_NaN()
                                            : sum / static_cast<double>(s.size()));
      detail::GroupParameters<Model> own{model_, k};
      check_finite(s.empty() ? 0.0 : info.group_losses.back(), own, step_ + 1, std::to_string(k));
      if (!s.empty()) samplers_[static_cast<std::size_t>(k)].record(ts, ls);
    }
    check_finite(loss.loss, model_, step_ + 1, "shared");
    if (options_.clip_norm > 0) optim::clip_grad_norm(model_, options_.clip_norm);
    update(info);
    return info;
  }

  void update(StepInfo& info) {
    info.lr = options_.lr.at(step_);
    optimizer_.step(model_, info.lr);
    if (options_.use_ema) ema_.update(model_);
  }

  // The progress bar, CSV log and loss plot the options ask for, then the options' own observers.
  TrainingObservers observers_of_run() const {
    TrainingObservers o;
    if (options_.progress.mode != ProgressOptions::Mode::Off)
      o.push_back(std::make_shared<ProgressObserver>(options_.progress));
    if (!options_.csv_path.empty()) {
      o.push_back(std::make_shared<CsvLogObserver>(options_.csv_path));
      if (!options_.plot_path.empty())
        o.push_back(std::make_shared<LossPlotObserver>(options_.plot_path, options_.csv_path));
    }
    for (const auto& extra : options_.observers)
      if (extra) o.push_back(extra);
    return o;
  }

  io::TrainingState state() const {
    io::TrainingState s;
    s.step = step_;
    s.generators.emplace("noise", noise_);
    s.generators.emplace("timesteps", timesteps_);
    batches_.save_position(s.counters, "data");
    if constexpr (requires { model_.visit_random_state(dropout_visitor_probe, std::string()); })
      model_.visit_random_state(
          [&](const std::string& name, auto& dropout) {
            if (dropout.config().p > 0.0)
              s.generators.emplace(kDropoutState + name, Generator(dropout.config().seed, dropout.calls()));
          },
          std::string());
    s.counters["seconds_ms"] = static_cast<std::int64_t>(seconds_ * 1000.0);
    return s;
  }

  // Rank 0 writes (every rank holds the same state); a failure there stops every rank.
  void save() {
    std::exception_ptr failure;
    if (comm_.rank() == 0) try {
        io::save_checkpoint(options_.checkpoint_path, model_, description(), state(), &optimizer_,
                            options_.use_ema ? &ema_ : nullptr);
      } catch (...) {
        failure = std::current_exception();
      }
    if (!distributed::any_rank(comm_, failure != nullptr)) return;
    if (failure) std::rethrow_exception(failure);
    throw IoError("Trainer: rank 0 could not write the checkpoint " + options_.checkpoint_path.string() +
                  " (its error output says why)");
  }

  // Loads the checkpoint on every rank; returns the seconds the earlier runs took.
  double restore() {
    if (comm_.rank() == 0) io::remove_stale_temporaries(options_.checkpoint_path);
    comm_.barrier();  // no rank reads while rank 0 tidies the directory
    io::TrainingState s;
    std::exception_ptr failure;
    try {
      s = io::load_checkpoint(options_.checkpoint_path, model_, description(), &optimizer_,
                              options_.use_ema ? &ema_ : nullptr);
    } catch (...) {
      failure = std::current_exception();
    }
    if (distributed::any_rank(comm_, failure != nullptr)) {
      if (failure) std::rethrow_exception(failure);
      throw IoError("Trainer: another rank could not read the checkpoint " + options_.checkpoint_path.string());
    }
    auto generator = [&](const char* name) {
      auto it = s.generators.find(name);
      if (it == s.generators.end())
        throw FormatError(options_.checkpoint_path.string() + ": checkpoint lacks the '" + name + "' generator");
      return it->second;
    };
    noise_ = generator("noise");
    timesteps_ = generator("timesteps");
    batches_.restore_position(s.counters, "data");
    if constexpr (requires { model_.visit_random_state(dropout_visitor_probe, std::string()); }) {
      // find every layer's state before setting any, so a bad checkpoint leaves the layers unchanged
      std::vector<std::function<void()>> staged;
      model_.visit_random_state(
          [&](const std::string& name, auto& dropout) {
            if (dropout.config().p == 0.0) return;  // draws nothing: not saved
            const Generator g = generator((kDropoutState + name).c_str());
            staged.emplace_back([&dropout, g] {
              dropout.set_seed(g.seed());
              dropout.set_calls(g.stream());
            });
          },
          std::string());
      for (auto& set : staged) set();
    }
    step_ = s.step;
    auto ms = s.counters.find("seconds_ms");
    return ms == s.counters.end() ? 0.0 : static_cast<double>(ms->second) / 1000.0;
  }

  Model& model_;
  const Schedule& schedule_;
  TrainOptions options_;
  BatchMode mode_;
  data::ShufflingBatches batches_;
  optim::AdamW<T, B> optimizer_;
  optim::Ema<T, B> ema_;
  Generator noise_, timesteps_;
  Objective objective_;
  Comm comm_;
  distributed::GradientBuckets<T, B> buckets_;
  std::vector<AnyTimestepSampler> samplers_;
  StepCallback callback_;
  std::int64_t step_ = 0;
  double seconds_ = 0.0;
};

}  // namespace progdiff::train

#pragma once
// The settings of a training run (train/trainer.hpp) and the type-erased timestep sampler
// through which each group's timesteps are drawn.
//
//   TrainOptions o;
//   o.steps = 2000; o.batch_size = 64; o.lr.lr = 2e-4; o.lr.warmup_steps = 100;
//   o.checkpoint_every = 500; o.checkpoint_path = "run/ckpt.safetensors";
//   o.make_sampler = [](std::int64_t group, std::int64_t begin, std::int64_t end) {
//     return train::AnyTimestepSampler(train::ImportanceTimesteps(begin, end)); };
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/loss/loss_weighting.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/optim/ema.hpp"
#include "progdiff/optim/lr_schedule.hpp"
#include "progdiff/train/progress_bar.hpp"
#include "progdiff/train/step_info.hpp"
#include "progdiff/train/timestep_sampler.hpp"
#include "progdiff/train/training_observer.hpp"

namespace progdiff::train {

/// Any TimestepSampler behind one type; calls record(timesteps, losses) after each step when the
/// wrapped sampler has it (ImportanceTimesteps). Copies share the wrapped sampler.
class AnyTimestepSampler {
 public:
  template <TimestepSampler S>
  AnyTimestepSampler(S sampler)
      : impl_(std::make_shared<Model<S>>(std::move(sampler))) {}  // NOLINT: implicit on purpose

  TimestepDraw draw(Generator& gen, std::int64_t count) { return impl_->draw(gen, count); }
  std::pair<std::int64_t, std::int64_t> range() const { return impl_->range(); }
  void record(std::span<const std::int64_t> timesteps, std::span<const double> losses) {
    impl_->record(timesteps, losses);
  }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual TimestepDraw draw(Generator&, std::int64_t) = 0;
    virtual std::pair<std::int64_t, std::int64_t> range() const = 0;
    virtual void record(std::span<const std::int64_t>, std::span<const double>) = 0;
  };
  template <class S>
  struct Model final : Concept {
    explicit Model(S s) : sampler(std::move(s)) {}
    TimestepDraw draw(Generator& gen, std::int64_t count) override { return sampler.draw(gen, count); }
    std::pair<std::int64_t, std::int64_t> range() const override { return sampler.range(); }
    void record(std::span<const std::int64_t> t, std::span<const double> l) override {
      if constexpr (requires { sampler.record(t, l); }) sampler.record(t, l);
    }
    S sampler;
  };
  std::shared_ptr<Concept> impl_;
};

/// Makes the sampler of group `group`, whose timesteps are [begin, end).
using SamplerFactory = std::function<AnyTimestepSampler(std::int64_t group, std::int64_t begin, std::int64_t end)>;

struct TrainOptions {
  loss::WeightingConfig weighting{};  // loss weighting (the prediction type is the model's)
  optim::AdamWConfig adamw{};
  optim::LrSchedule lr{};  // learning rate, linear warm-up, decay (total_steps 0: `steps`)
  double clip_norm = 1.0;  // global L2 gradient clip per update; <= 0 disables it
  bool use_ema = true;     // keep an EMA of the weights (saved in checkpoints)
  optim::EmaConfig ema{};  // EMA decay and warm-up
  std::int64_t batch_size = 64;
  std::int64_t steps = 1000;              // total optimizer steps of the run, counting those before a resume
  std::uint64_t seed = 0;                 // data order, flips, noise and timesteps
  bool random_flip = false;               // random horizontal flips of the training images
  std::int64_t checkpoint_every = 0;      // 0: only at the end (when a path is set)
  std::filesystem::path checkpoint_path;  // empty: no checkpoints
  bool resume = true;                     // continue from checkpoint_path when it exists
  std::filesystem::path csv_path;         // empty: no CSV log
  std::filesystem::path plot_path;        // empty: no PNG loss plot at the end (drawn by gnuplot when installed)
  ProgressOptions progress{};
  TrainingObservers observers;  // more observers of the run, after the built-in ones (train/training_observer.hpp)
  SamplerFactory make_sampler;  // empty: UniformTimesteps over each group's range
  std::int64_t allreduce_bucket_bytes = std::int64_t{4} << 20;  // data-parallel runs: gradient bytes per all-reduce
};

}  // namespace progdiff::train

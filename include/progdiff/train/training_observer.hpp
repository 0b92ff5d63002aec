#pragma once
// TrainingObserver: whoever watches a training run. The Trainer tells its observers when a run
// begins, after every step and checkpoint, and when it ends or is interrupted by an exception;
// they own what a run shows and writes besides its checkpoints. The progress bar, the CSV log and
// the loss plot are observers of this kind, made from TrainOptions (progress, csv_path,
// plot_path); a user replaces one by switching it off there and adding an observer of their own
// to TrainOptions::observers (a dashboard, a metrics server, an early stop that throws).
//
//   struct EveryHundred : train::TrainingObserver {
//     void step(const train::StepInfo& s, double seconds) override {
//       if (s.step % 100 == 0) std::printf("%lld %.4f %.0fs\n", (long long)s.step, s.loss, seconds);
//     }
//   };
//   options.progress.mode = train::ProgressOptions::Mode::Off;
//   options.observers.push_back(std::make_shared<EveryHundred>());
//
// Observers run on the rank that writes (rank 0 of a data-parallel run), in the order given:
// the built-in ones first. The built-in ones: ProgressObserver (train/progress_bar.hpp),
// CsvLogObserver (train/csv_log.hpp), LossPlotObserver (train/loss_plot_observer.hpp; the drawing
// itself is io/loss_plot.hpp).
#include <cstdint>
#include <memory>
#include <vector>

#include "progdiff/train/step_info.hpp"

namespace progdiff::train {

/// What an observer learns when a run (or a resumed run) begins.
struct RunStart {
  std::int64_t first_step = 0;  // steps already done (a resumed run's checkpoint step)
  std::int64_t steps = 0;       // the step the run ends at
  bool mixed_batches = false;   // one batch mixes every group's timesteps (its loss is labelled "all")
};

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void begin(const RunStart&) {}
  /// After step info.step (and its checkpoint, when info.checkpointed); `seconds`: the run's
  /// training time so far, resumed runs included.
  virtual void step(const StepInfo&, double) {}
  /// The run is leaving by an exception (a failed step or an observer's).
  virtual void interrupted() {}
  /// The run reached its last step.
  virtual void end() {}
};

using TrainingObservers = std::vector<std::shared_ptr<TrainingObserver>>;

}  // namespace progdiff::train

#pragma once
// LossPlotObserver: the loss plot of a training run, drawn when the run ends. The drawing is io's
// (io/loss_plot.hpp); this observer only reads the run's CSV log back and hands its losses over.
// It is the one part of train/ that includes plot drawing, because TrainOptions::plot_path makes
// it one of the Trainer's built-in observers (trainer.hpp).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/io/loss_plot.hpp"
#include "progdiff/train/csv_log.hpp"
#include "progdiff/train/training_observer.hpp"

namespace progdiff::train {

/// At the end of a run, every group's loss curve (log scale) as a PNG drawn by gnuplot
/// (io/loss_plot.hpp; without gnuplot, no plot). The curve is read back from the CSV log at
/// `csv_path`, so a resumed run's plot covers the whole run.
class LossPlotObserver : public TrainingObserver {
 public:
  LossPlotObserver(std::filesystem::path plot_path, std::filesystem::path csv_path)
      : plot_path_(std::move(plot_path)), csv_path_(std::move(csv_path)) {}
  void end() override {
    std::vector<io::LossPoint> points;
    for (const CsvRow& r : CsvLog::read(csv_path_, std::numeric_limits<std::int64_t>::max()))
      points.push_back({r.group == "all" ? "whole batch" : "group " + r.group, r.step, r.loss});
    try {
      io::write_loss_plot(plot_path_, points);  // false without gnuplot: no plot, said once
    } catch (const IoError& e) {                // the run's results are intact: a plot that failed is only reported
      std::fprintf(stderr, "progdiff: the loss plot was not drawn: %s\n", e.what());
    }
  }

 private:
  std::filesystem::path plot_path_, csv_path_;
};

}  // namespace progdiff::train

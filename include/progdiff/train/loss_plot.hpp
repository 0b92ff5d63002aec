#pragma once
// LossPlotObserver: the loss plot of a training run, drawn when the run ends.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/io/line_plot.hpp"
#include "progdiff/train/csv_log.hpp"
#include "progdiff/train/training_observer.hpp"

namespace progdiff::train {

/// At the end of a run, every group's loss curve (log scale) as a PNG drawn by gnuplot
/// (io/line_plot.hpp; without gnuplot, no plot). The curve is read back from the CSV log at
/// `csv_path`, so a resumed run's plot covers the whole run.
class LossPlotObserver : public TrainingObserver {
 public:
  LossPlotObserver(std::filesystem::path plot_path, std::filesystem::path csv_path)
      : plot_path_(std::move(plot_path)), csv_path_(std::move(csv_path)) {}
  void end() override {
    std::vector<io::LineSeries> series;
    for (const CsvRow& r : CsvLog::read(csv_path_, std::numeric_limits<std::int64_t>::max())) {
      const std::string name = r.group == "all" ? "whole batch" : "group " + r.group;
      auto it = std::find_if(series.begin(), series.end(), [&](const auto& s) { return s.name == name; });
      if (it == series.end()) {
        series.push_back({name, {}, {}, io::series_color(series.size())});
        it = series.end() - 1;
      }
      it->x.push_back(static_cast<double>(r.step));
      it->y.push_back(r.loss);
    }
    io::PlotOptions o;
    o.log_y = true;
    o.line_width = 2;
    o.x_label = "step", o.y_label = "training loss";
    try {
      io::write_line_plot(plot_path_.string(), series, o);  // false without gnuplot: no plot, said once
    } catch (const IoError& e) {  // the run's results are intact: a plot that failed is only reported
      std::fprintf(stderr, "progdiff: the loss plot was not drawn: %s\n", e.what());
    }
  }

 private:
  std::filesystem::path plot_path_, csv_path_;
};

}  // namespace progdiff::train

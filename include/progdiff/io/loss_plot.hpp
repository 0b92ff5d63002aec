#pragma once
// The loss plot of a training run: one loss curve per group against the step, on a log scale, as
// a PNG drawn by gnuplot (line_plot.hpp; without gnuplot, no plot). The trainer draws it at the
// end of a run from its CSV log (train/loss_plot_observer.hpp).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/io/line_plot.hpp"

namespace progdiff::io {

/// One logged loss: the curve it belongs to (its legend entry), the step and the loss.
struct LossPoint {
  std::string curve;
  std::int64_t step = 0;
  double loss = 0.0;
};

/// Draws one curve per curve name of `points`, in the order the names first appear and each in
/// its own colour (series_color), loss on a log scale, at `path`. Returns false without gnuplot
/// (write_line_plot: no plot, said once); IoError when gnuplot fails.
inline bool write_loss_plot(const std::filesystem::path& path, const std::vector<LossPoint>& points) {
  std::vector<LineSeries> series;
  for (const LossPoint& p : points) {
    auto it = std::find_if(series.begin(), series.end(), [&](const auto& s) { return s.name == p.curve; });
    if (it == series.end()) {
      series.push_back({p.curve, {}, {}, series_color(series.size())});
      it = series.end() - 1;
    }
    it->x.push_back(static_cast<double>(p.step));
    it->y.push_back(p.loss);
  }
  PlotOptions o;
  o.log_y = true;
  o.line_width = 2;
  o.x_label = "step", o.y_label = "training loss";
  return write_line_plot(path.string(), series, o);
}

}  // namespace progdiff::io

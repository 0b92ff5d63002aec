#pragma once
// ProgressBar: one status line for a training run,
//   step 120/1000 [#####.......] 12.0% | loss g0 0.0412 g1 0.0873 | 3.1 steps/s | ETA 4m44s
// redrawn in place with '\r' when the stream is a terminal, otherwise printed as a plain line
// every `every` steps (and at the last), so logs of batch jobs stay readable.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/train/training_observer.hpp"

namespace progdiff::train {

struct ProgressOptions {
  enum class Mode { Auto, Redraw, Lines, Off };
  Mode mode = Mode::Auto;       // Auto: Redraw when `out` is std::cout on a terminal, else Lines
  std::ostream* out = nullptr;  // nullptr: std::cout
  std::int64_t every = 0;       // Lines: print every N steps; 0: about 20 lines per run
  int bar_width = 20;
};

/// "4m44s", "1h02m", "12s" for a duration in seconds (negative or not finite: "?").
inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) return "?";
  const auto s = static_cast<std::int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  return buf;
}

/// The status line (without '\r' or newline); `losses` are (label, value) pairs.
inline std::string progress_line(std::int64_t step, std::int64_t total,
                                 const std::vector<std::pair<std::string, double>>& losses, double steps_per_second,
                                 int bar_width = 20) {
  const double fraction = total > 0 ? static_cast<double>(step) / static_cast<double>(total) : 1.0;
  std::string line = "step " + std::to_string(step) + "/" + std::to_string(total) + " [";
  const int filled = static_cast<int>(fraction * bar_width + 1e-9);
  for (int i = 0; i < bar_width; ++i) line += i < filled ? '#' : '.';
  char buf[64];
  std::snprintf(buf, sizeof buf, "] %5.1f%% | loss", 100.0 * fraction);
  line += buf;
  for (const auto& [label, value] : losses) {
    std::snprintf(buf, sizeof buf, " %.4g", value);
    line += (label.empty() ? "" : " " + label) + buf;
  }
  std::snprintf(buf, sizeof buf, " | %.3g steps/s | ETA ", steps_per_second);
  line += buf;
  line += steps_per_second > 0 ? format_duration(static_cast<double>(total - step) / steps_per_second) : "?";
  return line;
}

class ProgressBar {
 public:
  /// A bar for steps (first, total]: `first` steps were done before (a resumed run).
  ProgressBar(std::int64_t first, std::int64_t total, ProgressOptions options)
      : options_(options), first_(first), total_(total), start_(std::chrono::steady_clock::now()) {
    out_ = options.out ? options.out : &std::cout;
    redraw_ = options.mode == ProgressOptions::Mode::Redraw ||
              (options.mode == ProgressOptions::Mode::Auto && out_ == &std::cout && ::isatty(STDOUT_FILENO));
    every_ = options.every > 0 ? options.every : std::max<std::int64_t>(1, (total - first) / 20);
  }

  bool redraws() const { return redraw_; }

  /// After `step` completed steps with these losses.
  void update(std::int64_t step, const std::vector<std::pair<std::string, double>>& losses) {
    if (options_.mode == ProgressOptions::Mode::Off) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(step - first_) / elapsed : 0.0;
    const std::string line = progress_line(step, total_, losses, rate, options_.bar_width);
    if (redraw_) {
      *out_ << '\r' << line << std::string(line.size() < width_ ? width_ - line.size() : 0, ' ') << std::flush;
      width_ = line.size();
      if (step == total_) *out_ << '\n' << std::flush;
    } else if ((step - first_) % every_ == 0 || step == total_) {
      *out_ << line << '\n' << std::flush;
    }
  }

  /// Ends a redrawn line early (a run stopped by an error).
  void interrupt() {
    if (redraw_ && width_ > 0 && options_.mode != ProgressOptions::Mode::Off) *out_ << '\n' << std::flush;
    width_ = 0;
  }

 private:
  ProgressOptions options_;
  std::ostream* out_;
  bool redraw_ = false;
  std::int64_t first_, total_, every_;
  std::size_t width_ = 0;
  std::chrono::steady_clock::time_point start_;
};

/// The status line of train/progress_bar.hpp, one loss per group ("g0", "g1", ..., "all").
class ProgressObserver : public TrainingObserver {
 public:
  explicit ProgressObserver(ProgressOptions options) : options_(options) {}
  void begin(const RunStart& run) override {
    mixed_ = run.mixed_batches;
    bar_.emplace(run.first_step, run.steps, options_);
  }
  void step(const StepInfo& info, double) override { bar_->update(info.step, labelled(info)); }
  void interrupted() override {
    if (bar_) bar_->interrupt();
  }

 private:
  std::vector<std::pair<std::string, double>> labelled(const StepInfo& info) const {
    if (info.group_losses.size() == 1) return {{"", info.loss}};
    std::vector<std::pair<std::string, double>> out;
    for (std::size_t k = 0; k < info.group_losses.size(); ++k) {
      std::string label = "g";  // appended: GCC 12 warns falsely on ("g" + string) (-Wrestrict)
      label += std::to_string(k);
      out.emplace_back(std::move(label), info.group_losses[k]);
    }
    if (mixed_) out.emplace_back("all", info.loss);
    return out;
  }

  ProgressOptions options_;
  std::optional<ProgressBar> bar_;
  bool mixed_ = false;
};

}  // namespace progdiff::train

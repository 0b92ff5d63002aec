#pragma once
// CsvLog: the training log as CSV, one row per step and group,
//   step,group,loss,lr,seconds
//   1,0,0.98312,2e-05,0.114
// `group` is the group index, or "all" for the loss of a whole mixed batch. The rows are also
// kept in memory (rows()), for the loss plot. Opening an existing log to continue a resumed run
// keeps only the rows up to the resumed step, so rows a killed run wrote after its last
// checkpoint are not duplicated. Each row is flushed, so a killed run's log is complete.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/train/training_observer.hpp"

namespace progdiff::train {

struct CsvRow {
  std::int64_t step = 0;
  std::string group;
  double loss = 0.0;
  double lr = 0.0;
  double seconds = 0.0;
};

class CsvLog {
 public:
  static constexpr const char* kHeader = "step,group,loss,lr,seconds";

  /// A log at `path`; keeps existing rows with step <= `keep_up_to` (none when negative).
  CsvLog(std::filesystem::path path, std::int64_t keep_up_to) : path_(std::move(path)) {
    if (keep_up_to >= 0 && std::filesystem::exists(path_)) rows_ = read(path_, keep_up_to);
    std::ofstream out(path_, std::ios::trunc);
    if (!out) throw IoError("CsvLog: cannot write '" + path_.string() + "'");
    out << kHeader << '\n';
    for (const auto& r : rows_) out << format(r) << '\n';
    out.close();
    stream_.open(path_, std::ios::app);
    if (!stream_) throw IoError("CsvLog: cannot append to '" + path_.string() + "'");
  }

  void append(const CsvRow& row) {
    rows_.push_back(row);
    stream_ << format(row) << '\n' << std::flush;
    if (!stream_) throw IoError("CsvLog: writing '" + path_.string() + "' failed");
  }

  const std::vector<CsvRow>& rows() const { return rows_; }

  static std::string format(const CsvRow& r) {
    char buf[128];
    std::snprintf(buf, sizeof buf, ",%.9g,%.9g,%.3f", r.loss, r.lr, r.seconds);
    return std::to_string(r.step) + "," + r.group + buf;
  }

  /// The rows of the log at `path` with step <= keep_up_to; FormatError naming the line of a bad row.
  static std::vector<CsvRow> read(const std::filesystem::path& path, std::int64_t keep_up_to) {
    std::ifstream in(path);
    if (!in) throw IoError("CsvLog: cannot read '" + path.string() + "'");
    std::string line;
    std::vector<CsvRow> rows;
    std::int64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (number == 1) {
        if (line != kHeader)
          throw FormatError(path.string() + ": line 1 is '" + line + "', expected the header '" + kHeader + "'");
        continue;
      }
      if (line.empty()) continue;
      std::istringstream fields(line);
      std::string step, group, loss, lr, seconds;
      if (!std::getline(fields, step, ',') || !std::getline(fields, group, ',') || !std::getline(fields, loss, ',') ||
          !std::getline(fields, lr, ',') || !std::getline(fields, seconds))
        throw FormatError(path.string() + ": line " + std::to_string(number) + " does not have five fields");
      try {
        CsvRow r{std::stoll(step), group, std::stod(loss), std::stod(lr), std::stod(seconds)};
        if (r.step <= keep_up_to) rows.push_back(r);
      } catch (const std::exception&) {
        throw FormatError(path.string() + ": line " + std::to_string(number) + " holds a field that is not a number");
      }
    }
    return rows;
  }

 private:
  std::filesystem::path path_;
  std::vector<CsvRow> rows_;
  std::ofstream stream_;
};

/// The CSV log of train/csv_log.hpp: one row per step and group (and "all" for a mixed batch).
class CsvLogObserver : public TrainingObserver {
 public:
  explicit CsvLogObserver(std::filesystem::path path) : path_(std::move(path)) {}
  void begin(const RunStart& run) override {
    mixed_ = run.mixed_batches;
    log_.emplace(path_, run.first_step);  // drops rows a killed run wrote after its checkpoint
  }
  void step(const StepInfo& info, double seconds) override {
    for (std::size_t k = 0; k < info.group_losses.size(); ++k)
      if (std::isfinite(info.group_losses[k]))
        log_->append({info.step, std::to_string(k), info.group_losses[k], info.lr, seconds});
    if (mixed_) log_->append({info.step, "all", info.loss, info.lr, seconds});
  }

 private:
  std::filesystem::path path_;
  std::optional<CsvLog> log_;
  bool mixed_ = false;
};

}  // namespace progdiff::train

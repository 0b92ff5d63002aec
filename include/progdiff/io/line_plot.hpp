#pragma once
// Line plots (loss curves, study results) as PNG images, drawn by gnuplot (Debian: gnuplot-nox).
//
// gnuplot is optional at run time: without it write_line_plot draws nothing, says so once on
// stderr with the package to install, and returns false, so a training run never fails for want
// of a plot. The program is the first `gnuplot` on PATH, or the one PROGDIFF_GNUPLOT names
// (empty: plots off). The image appears atomically: gnuplot writes a temporary file that is then
// renamed, so a reader never sees half a PNG.
//
// A non-finite point breaks its line; on a log axis, points <= 0 on it are left out; a series of
// one point is drawn as a dot. Ranges default to the data's extent.
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/io/png.hpp"

namespace progdiff::io {

struct LineSeries {
  std::string name;
  std::vector<double> x, y;
  Rgb color{31, 119, 180};
};

struct PlotOptions {
  int width = 640, height = 400;
  int line_width = 1;
  bool log_x = false, log_y = false;
  bool legend = true;
  std::string title, x_label, y_label;
  std::optional<double> x_min, x_max, y_min, y_max;  // data units
};

/// A distinct colour for series i (matplotlib's tab10 cycle).
inline Rgb series_color(std::size_t i) {
  static constexpr std::array<Rgb, 10> palette{{{31, 119, 180},
                                                {255, 127, 14},
                                                {44, 160, 44},
                                                {214, 39, 40},
                                                {148, 103, 189},
                                                {140, 86, 75},
                                                {227, 119, 194},
                                                {127, 127, 127},
                                                {188, 189, 34},
                                                {23, 190, 207}}};
  return palette[i % palette.size()];
}

namespace detail {

// A gnuplot single-quoted string: inside one, '' stands for a quote and nothing else is special.
inline std::string gnuplot_quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

inline std::string shell_quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string hex_color(Rgb c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

inline std::string range(const std::optional<double>& lo, const std::optional<double>& hi) {
  auto bound = [](const std::optional<double>& v) {
    if (!v) return std::string("*");
    std::ostringstream s;
    s.precision(17);
    s << *v;
    return s.str();
  };
  return "[" + bound(lo) + ":" + bound(hi) + "]";
}

inline bool drawable(double x, double y, const PlotOptions& o) {
  return std::isfinite(x) && std::isfinite(y) && !(o.log_x && x <= 0) && !(o.log_y && y <= 0);
}

inline std::string gnuplot_script(const std::string& output, const std::vector<LineSeries>& all, PlotOptions o) {
  // Series without a point to draw are left out (gnuplot refuses a plot with no valid point);
  // with nothing at all to draw, empty axes over default ranges.
  std::vector<LineSeries> series;
  for (const auto& l : all)
    for (std::size_t j = 0; j < l.x.size(); ++j)
      if (drawable(l.x[j], l.y[j], o)) {
        series.push_back(l);
        break;
      }
  if (series.empty()) {
    if (!o.x_min) o.x_min = o.log_x ? 1.0 : 0.0;
    if (!o.x_max) o.x_max = *o.x_min * (o.log_x ? 10.0 : 1.0) + (o.log_x ? 0.0 : 1.0);
    if (!o.y_min) o.y_min = o.log_y ? 1.0 : 0.0;
    if (!o.y_max) o.y_max = *o.y_min * (o.log_y ? 10.0 : 1.0) + (o.log_y ? 0.0 : 1.0);
  }
  std::ostringstream s;
  s.precision(17);
  s << "set terminal pngcairo size " << o.width << "," << o.height << " noenhanced\n";
  s << "set output " << gnuplot_quoted(output) << "\n";
  if (!o.title.empty()) s << "set title " << gnuplot_quoted(o.title) << "\n";
  if (!o.x_label.empty()) s << "set xlabel " << gnuplot_quoted(o.x_label) << "\n";
  if (!o.y_label.empty()) s << "set ylabel " << gnuplot_quoted(o.y_label) << "\n";
  s << (o.legend ? "set key top right\n" : "unset key\n");
  if (o.log_x) s << "set logscale x\n";
  if (o.log_y) s << "set logscale y\n";
  s << "set grid\n";
  s << "set xrange " << range(o.x_min, o.x_max) << "\nset yrange " << range(o.y_min, o.y_max) << "\n";
  for (std::size_t i = 0; i < series.size(); ++i) {
    s << "$s" << i << " << EOD\n";
    for (std::size_t j = 0; j < series[i].x.size(); ++j) {
      const double x = series[i].x[j], y = series[i].y[j];
      if (!drawable(x, y, o)) {
        s << "\n";  // a blank line breaks the line
        continue;
      }
      s << x << " " << y << "\n";
    }
    s << "EOD\n";
  }
  s << "plot";
  if (series.empty()) s << " NaN notitle";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto& l = series[i];
    s << (i ? ", \\\n    " : " ") << "$s" << i << " using 1:2 with "
      << (l.x.size() == 1 ? "points pt 7 ps 0.8" : "lines lw " + std::to_string(o.line_width)) << " lc rgb '"
      << hex_color(l.color) << "' title " << gnuplot_quoted(l.name);
  }
  s << "\n";
  return s.str();
}

}  // namespace detail

/// The gnuplot program plots are drawn with: $PROGDIFF_GNUPLOT when set (empty: none), else the
/// first executable `gnuplot` on PATH; nullopt when there is none.
inline std::optional<std::filesystem::path> gnuplot_program() {
  if (const char* named = std::getenv("PROGDIFF_GNUPLOT")) {
    if (*named == '\0') return std::nullopt;
    return std::filesystem::path(named);
  }
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const std::filesystem::path candidate = std::filesystem::path(dir) / "gnuplot";
    std::error_code ec;
    const auto perms = std::filesystem::status(candidate, ec).permissions();
    if (!ec && std::filesystem::is_regular_file(candidate, ec) &&
        (perms & std::filesystem::perms::owner_exec) != std::filesystem::perms::none)
      return candidate;
  }
  return std::nullopt;
}

/// Draws `series` into the PNG file `path` with gnuplot. Returns false, having written nothing,
/// when there is no gnuplot (told once on stderr); IoError when gnuplot fails, with its message;
/// ConfigError for a series whose x and y differ in length.
inline bool write_line_plot(const std::string& path, const std::vector<LineSeries>& series, const PlotOptions& o = {}) {
  for (const auto& s : series)
    require(s.x.size() == s.y.size(), "write_line_plot: series '" + s.name + "' has " + std::to_string(s.x.size()) +
                                          " x values and " + std::to_string(s.y.size()) + " y values");
  require(o.width >= 64 && o.height >= 64 && o.line_width >= 1,
          "write_line_plot: a " + std::to_string(o.width) + "x" + std::to_string(o.height) + " image with line width " +
              std::to_string(o.line_width) + " (at least 64x64 and 1)");
  const auto program = gnuplot_program();
  if (!program) {
    static std::once_flag told;
    std::call_once(told, [] {
      std::fprintf(stderr,
                   "progdiff: no gnuplot found (PATH or PROGDIFF_GNUPLOT); plots are not drawn. Install it to get "
                   "them, e.g. apt-get install gnuplot-nox\n");
    });
    return false;
  }
  const std::filesystem::path target(path), partial = target.string() + ".partial.png",
                                            script = target.string() + ".gp", errors = target.string() + ".gnuplot.log";
  {
    std::ofstream out(script, std::ios::trunc);
    out << detail::gnuplot_script(partial.string(), series, o);
    if (!out) throw IoError("write_line_plot: cannot write '" + script.string() + "'");
  }
  const std::string command = detail::shell_quoted(program->string()) + " " + detail::shell_quoted(script.string()) +
                              " 2> " + detail::shell_quoted(errors.string());
  const int status = std::system(command.c_str());
  std::error_code ec;
  std::ostringstream message;
  message << std::ifstream(errors).rdbuf();
  std::filesystem::remove(script, ec);
  std::filesystem::remove(errors, ec);
  if (status != 0 || !std::filesystem::exists(partial)) {
    std::filesystem::remove(partial, ec);
    throw IoError("write_line_plot: " + program->string() + " failed drawing '" + path + "' (exit status " +
                  std::to_string(status) + "): " + message.str());
  }
  std::filesystem::rename(partial, target);
  return true;
}

}  // namespace progdiff::io

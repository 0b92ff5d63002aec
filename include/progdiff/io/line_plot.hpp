#pragma once
// A small line-plot rasterizer for loss curves, written as PNG (io/png.hpp).
//
// Geometry (all in pixels, y down), for an image of W x H and the options' margins:
//   plot area   columns [left, right] = [margin_left, W - 1 - margin_right],
//               rows    [top, bottom] = [margin_top,  H - 1 - margin_bottom]
//   axes        the y axis is column left - 1 and the x axis row bottom + 1 (black), so a curve on
//               the area's edge never hides them
//   data -> px  px = left + round((x - x_min) / (x_max - x_min) * (right - left))
//               py = bottom - round((v - v_min) / (v_max - v_min) * (bottom - top)),
//               v = y, or log10(y) with log_y (points with y <= 0 are then skipped)
//   series      a polyline through consecutive points (Bresenham, `line_width` pixels), in the
//               series' colour; non-finite points break the line
//   ticks       `ticks` labelled marks per axis at evenly spaced data values, 3x5-pixel digits
//   legend      a colour swatch and the series name per series, top right inside the area
// The ranges default to the data's extent; a series with one point is drawn as a dot.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
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
  int margin_left = 56, margin_right = 16, margin_top = 16, margin_bottom = 32;
  int line_width = 1;
  bool log_y = false;
  int ticks = 5;  // labelled ticks per axis; 0: none
  bool legend = true;
  std::optional<double> x_min, x_max, y_min, y_max;  // data units (before log10)
  Rgb axis_color{0, 0, 0};
  Rgb background{255, 255, 255};
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

// 3x5 glyphs, one row per 3-bit mask (bit 2 = left column); 'g' is drawn as a capital G.
inline const std::array<std::uint8_t, 5>* glyph(char c) {
  static constexpr std::array<std::uint8_t, 5> digits[10] = {
      {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
      {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}};
  static constexpr std::array<std::uint8_t, 5> dot{0, 0, 0, 0, 2}, minus{0, 0, 7, 0, 0}, plus{0, 2, 7, 2, 0},
      e{7, 5, 7, 4, 7}, a{0, 7, 1, 7, 7}, l{6, 2, 2, 2, 7}, g{7, 4, 5, 5, 7};
  if (c >= '0' && c <= '9') return &digits[c - '0'];
  switch (c) {
    case '.':
      return &dot;
    case '-':
      return &minus;
    case '+':
      return &plus;
    case 'e':
      return &e;
    case 'a':
      return &a;
    case 'l':
      return &l;
    case 'g':
      return &g;
    default:
      return nullptr;  // drawn as a blank
  }
}

inline void draw_text(Image& img, int x, int y, const std::string& text, Rgb c) {
  for (char ch : text) {
    if (const auto* g = glyph(ch))
      for (int row = 0; row < 5; ++row)
        for (int col = 0; col < 3; ++col)
          if (((*g)[static_cast<std::size_t>(row)] >> (2 - col)) & 1) img.set(x + col, y + row, c);
    x += 4;
  }
}

inline std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace detail

/// The plot of `series` as an image.
inline Image draw_line_plot(const std::vector<LineSeries>& series, const PlotOptions& o = {}) {
  const int left = o.margin_left, right = o.width - 1 - o.margin_right;
  const int top = o.margin_top, bottom = o.height - 1 - o.margin_bottom;
  require(left >= 1 && right > left && top >= 0 && bottom > top && o.line_width >= 1,
          "draw_line_plot: the margins leave no plot area in a " + std::to_string(o.width) + "x" +
              std::to_string(o.height) + " image");
  auto value = [&](double y) {
    return o.log_y ? (y > 0 ? std::log10(y) : std::numeric_limits<double>::quiet_NaN()) : y;
  };
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, v_lo = x_lo, v_hi = -x_lo;
  for (const auto& s : series) {
    require(s.x.size() == s.y.size(), "draw_line_plot: series '" + s.name + "' has " + std::to_string(s.x.size()) +
                                          " x values and " + std::to_string(s.y.size()) + " y values");
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      const double v = value(s.y[i]);
      if (!std::isfinite(s.x[i]) || !std::isfinite(v)) continue;
      x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
      v_lo = std::min(v_lo, v), v_hi = std::max(v_hi, v);
    }
  }
  if (o.x_min) x_lo = *o.x_min;
  if (o.x_max) x_hi = *o.x_max;
  if (o.y_min) v_lo = value(*o.y_min);
  if (o.y_max) v_hi = value(*o.y_max);
  if (!std::isfinite(x_lo) || !std::isfinite(x_hi)) x_lo = 0, x_hi = 1;
  if (!std::isfinite(v_lo) || !std::isfinite(v_hi)) v_lo = 0, v_hi = 1;
  if (x_hi <= x_lo) x_hi = x_lo + 1;
  if (v_hi <= v_lo) v_hi = v_lo + 1;
  auto px = [&](double x) { return left + static_cast<int>(std::lround((x - x_lo) / (x_hi - x_lo) * (right - left))); };
  auto py = [&](double v) {
    return bottom - static_cast<int>(std::lround((v - v_lo) / (v_hi - v_lo) * (bottom - top)));
  };

  Image img(o.width, o.height, o.background);
  img.line(left - 1, top, left - 1, bottom + 1, o.axis_color);
  img.line(left - 1, bottom + 1, right, bottom + 1, o.axis_color);
  for (int i = 0; o.ticks > 1 && i < o.ticks; ++i) {
    const double f = static_cast<double>(i) / (o.ticks - 1);
    const int tx = left + static_cast<int>(std::lround(f * (right - left)));
    const int ty = bottom - static_cast<int>(std::lround(f * (bottom - top)));
    img.line(tx, bottom + 2, tx, bottom + 4, o.axis_color);
    img.line(left - 4, ty, left - 2, ty, o.axis_color);
    const std::string xl = detail::tick_label(x_lo + f * (x_hi - x_lo));
    detail::draw_text(img, tx - 2 * static_cast<int>(xl.size()), bottom + 7, xl, o.axis_color);
    const double v = v_lo + f * (v_hi - v_lo);
    const std::string yl = detail::tick_label(o.log_y ? std::pow(10.0, v) : v);
    detail::draw_text(img, left - 6 - 4 * static_cast<int>(yl.size()), ty - 2, yl, o.axis_color);
  }
  for (const auto& s : series) {
    bool have = false;
    int x0 = 0, y0 = 0;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      const double v = value(s.y[i]);
      if (!std::isfinite(s.x[i]) || !std::isfinite(v)) {
        have = false;
        continue;
      }
      const int x1 = px(s.x[i]), y1 = py(v);
      img.line(have ? x0 : x1, have ? y0 : y1, x1, y1, s.color, o.line_width);
      x0 = x1, y0 = y1, have = true;
    }
  }
  if (o.legend) {
    int y = top + 4;
    for (const auto& s : series) {
      const int x = right - 4 - 4 * static_cast<int>(s.name.size()) - 14;
      img.fill_rect(x, y + 1, x + 9, y + 3, s.color);
      detail::draw_text(img, x + 13, y, s.name, o.axis_color);
      y += 8;
    }
  }
  return img;
}

/// Draws `series` and writes the PNG to `path`.
inline void write_line_plot(const std::string& path, const std::vector<LineSeries>& series, const PlotOptions& o = {}) {
  write_png(path, draw_line_plot(series, o));
}

}  // namespace progdiff::io

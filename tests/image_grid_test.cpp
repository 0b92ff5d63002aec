// io/image_grid.hpp: torchvision's make_grid layout and save_image byte mapping, checked by
// their closed forms, and the written file read back through the PNG decoder.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/image_grid.hpp"
#include "progdiff/io/png_decode.hpp"

namespace progdiff_tests_image_grid {

using namespace progdiff;
using Cpu = backend::Cpu;

namespace {

// save_image's mapping written out independently: (v + 1) / 2 in [0, 1], times 255, plus 0.5,
// clamped to [0, 255], truncated.
int reference_byte(double v) {
  double u = (v + 1.0) / 2.0;
  u = u < 0 ? 0 : (u > 1 ? 1 : u);
  return static_cast<int>(u * 255.0 + 0.5);
}

// Image i's pixel (x, y) of channel c: a value that differs for every position, in [-1.2, 1.2]
// so that clipping happens at both ends.
double pattern(std::int64_t i, std::int64_t c, std::int64_t y, std::int64_t x) {
  return std::sin(0.7 * static_cast<double>(i) + 1.3 * static_cast<double>(c) + 0.37 * static_cast<double>(y) +
                  0.11 * static_cast<double>(x)) *
         1.2;
}

Tensor<float, Cpu> pattern_batch(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
  std::vector<float> v;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t x = 0; x < w; ++x) v.push_back(static_cast<float>(pattern(i, ch, y, x)));
  return Tensor<float, Cpu>::from_host(Shape{n, c, h, w}, v);
}

}  // namespace

TEST_CASE("unit_range_to_byte follows save_image's rounding and clipping") {
  CHECK(io::unit_range_to_byte(-1.0) == 0);
  CHECK(io::unit_range_to_byte(1.0) == 255);
  CHECK(io::unit_range_to_byte(0.0) == 128);  // 127.5 + 0.5 = 128
  CHECK(io::unit_range_to_byte(-3.0) == 0);
  CHECK(io::unit_range_to_byte(7.0) == 255);
  CHECK(io::unit_range_to_byte(std::nan("")) == 0);
  for (double v = -1.1; v <= 1.1; v += 0.0137) CHECK(io::unit_range_to_byte(v) == reference_byte(v));
}

TEST_CASE("a gray batch is tiled as make_grid lays it out") {
  // 5 images of 3 x 4 in rows of 2: 3 rows; make_grid's size is (rows (H + p) + p, cols (W + p) + p).
  const auto batch = pattern_batch(5, 1, 3, 4);
  const io::GridLayout layout{.columns = 2, .padding = 2, .background = {10, 20, 30}};
  const io::Image grid = io::image_grid(batch, layout);
  REQUIRE(grid.width() == 2 * (4 + 2) + 2);
  REQUIRE(grid.height() == 3 * (3 + 2) + 2);
  int image_pixels = 0;
  for (int gy = 0; gy < grid.height(); ++gy)
    for (int gx = 0; gx < grid.width(); ++gx) {
      const io::Rgb px = grid.at(gx, gy);
      // Which image cell (if any) covers this pixel, from make_grid's offsets y * (H + p) + p.
      const int cx = (gx - 2) / 6, cy = (gy - 2) / 5, ox = (gx - 2) % 6, oy = (gy - 2) % 5;
      const int index = cy * 2 + cx;
      const bool inside = gx >= 2 && gy >= 2 && ox < 4 && oy < 3 && index < 5;
      if (inside) {
        ++image_pixels;
        const int want = reference_byte(pattern(index, 0, oy, ox));
        CHECK(px.r == want);
        CHECK(px.g == want);
        CHECK(px.b == want);
      } else {
        CHECK(px.r == 10);
        CHECK(px.g == 20);
        CHECK(px.b == 30);
      }
    }
  CHECK(image_pixels == 5 * 3 * 4);  // the sixth cell stays background
}

TEST_CASE("an RGB batch keeps its channels; a batch smaller than a row is one row") {
  const auto batch = pattern_batch(2, 3, 2, 2);
  const io::Image grid = io::image_grid(batch, {.columns = 8, .padding = 1});
  REQUIRE(grid.width() == 2 * 3 + 1);
  REQUIRE(grid.height() == 3 + 1);
  for (int i = 0; i < 2; ++i)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 2; ++x) {
        const io::Rgb px = grid.at(1 + i * 3 + x, 1 + y);
        CHECK(px.r == reference_byte(pattern(i, 0, y, x)));
        CHECK(px.g == reference_byte(pattern(i, 1, y, x)));
        CHECK(px.b == reference_byte(pattern(i, 2, y, x)));
      }
}

TEST_CASE("write_image_grid writes a PNG that decodes to the grid") {
  const auto batch = pattern_batch(3, 1, 5, 6);
  const auto path = std::filesystem::temp_directory_path() / "progdiff_image_grid_test.png";
  io::write_image_grid(path, batch, {.columns = 3, .padding = 2});
  const io::DecodedImage png = io::read_png(path);
  const io::Image grid = io::image_grid(batch, {.columns = 3, .padding = 2});
  REQUIRE(png.width == grid.width());
  REQUIRE(png.height == grid.height());
  REQUIRE(png.channels == 3);
  for (int y = 0; y < png.height; ++y)
    for (int x = 0; x < png.width; ++x) {
      const std::size_t at = (static_cast<std::size_t>(y) * png.width + x) * 3;
      CHECK(png.pixels[at] == grid.at(x, y).r);
      CHECK(png.pixels[at + 1] == grid.at(x, y).g);
      CHECK(png.pixels[at + 2] == grid.at(x, y).b);
    }
  std::filesystem::remove(path);
}

TEST_CASE("image_grid refuses shapes it cannot draw, naming them") {
  CHECK_THROWS_WITH_AS(io::image_grid(Tensor<float, Cpu>::zeros({4, 32, 32})), doctest::Contains("[4, 32, 32]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(io::image_grid(Tensor<float, Cpu>::zeros({2, 2, 8, 8})), doctest::Contains("C = 1 or 3"),
                       ShapeError);
  CHECK_THROWS_AS(io::image_grid(Tensor<float, Cpu>::zeros({0, 1, 8, 8})), ShapeError);
  CHECK_THROWS_AS(io::image_grid(Tensor<float, Cpu>::zeros({1, 1, 8, 8}), {.columns = 0}), ConfigError);
  CHECK_THROWS_AS(io::write_image_grid("/nonexistent-directory/grid.png", Tensor<float, Cpu>::zeros({1, 1, 2, 2})),
                  IoError);
}

}  // namespace progdiff_tests_image_grid

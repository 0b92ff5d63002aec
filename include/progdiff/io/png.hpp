#pragma once
// PNG writing through libpng (its simplified API: 8-bit RGB, in memory), and Image: a row-major
// RGB raster with simple drawing helpers for line plots.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::io {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};

class Image {
 public:
  Image(int width, int height, Rgb background = {255, 255, 255}) : width_(width), height_(height) {
    require(width > 0 && height > 0, "Image: width and height must be positive");
    pixels_.assign(static_cast<std::size_t>(width) * height, background);
  }
  int width() const { return width_; }
  int height() const { return height_; }
  const Rgb& at(int x, int y) const { return pixels_[static_cast<std::size_t>(y) * width_ + x]; }

  /// Sets a pixel; points outside the image are ignored (clipping).
  void set(int x, int y, Rgb c) {
    if (x >= 0 && y >= 0 && x < width_ && y < height_) pixels_[static_cast<std::size_t>(y) * width_ + x] = c;
  }
  /// A line of the given thickness (Bresenham, with a square brush).
  void line(int x0, int y0, int x1, int y1, Rgb c, int thickness = 1) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      for (int a = -(thickness / 2); a <= (thickness - 1) / 2; ++a)
        for (int b = -(thickness / 2); b <= (thickness - 1) / 2; ++b) set(x0 + a, y0 + b, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = std::min(y0, y1); y <= std::max(y0, y1); ++y)
      for (int x = std::min(x0, x1); x <= std::max(x0, x1); ++x) set(x, y, c);
  }

 private:
  int width_, height_;
  std::vector<Rgb> pixels_;
};

/// The image as PNG bytes (8-bit RGB), written by libpng.
inline std::vector<std::uint8_t> encode_png(const Image& img) {
  std::vector<std::uint8_t> raster;
  raster.reserve(static_cast<std::size_t>(img.width()) * img.height() * 3);
  for (int y = 0; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) {
      const Rgb& c = img.at(x, y);
      raster.insert(raster.end(), {c.r, c.g, c.b});
    }
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(img.width());
  image.height = static_cast<png_uint_32>(img.height());
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_get_memory_size(image, size, 0, raster.data(), 0, nullptr))
    throw IoError(std::string("encode_png: libpng: ") + image.message);
  std::vector<std::uint8_t> out(size);
  if (!png_image_write_to_memory(&image, out.data(), &size, 0, raster.data(), 0, nullptr))
    throw IoError(std::string("encode_png: libpng: ") + image.message);
  out.resize(size);
  return out;
}

/// Writes an image as a PNG file; IoError names the path on failure.
inline void write_png(const std::string& path, const Image& img) {
  const auto bytes = encode_png(img);
  std::ofstream f(path, std::ios::binary);
  if (!f) throw IoError("write_png: cannot open " + path + " for writing");
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw IoError("write_png: writing " + path + " failed");
}

}  // namespace progdiff::io

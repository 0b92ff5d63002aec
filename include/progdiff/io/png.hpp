#pragma once
// A minimal PNG encoder (8-bit RGB, no interlace, filter 0 on every row) over zlib, per the
// PNG specification (ISO/IEC 15948): signature, IHDR, one IDAT, IEND, each chunk with its CRC-32.
// Image: a row-major RGB raster with simple drawing helpers for line plots.
#include <zlib.h>

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

namespace detail {
inline void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}
inline void put_chunk(std::vector<std::uint8_t>& out, const char* type, const std::vector<std::uint8_t>& data) {
  put_u32(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t type_at = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  // CRC-32 over the type and the data
  const uLong crc = crc32(0L, out.data() + type_at, static_cast<uInt>(4 + data.size()));
  put_u32(out, static_cast<std::uint32_t>(crc));
}
}  // namespace detail

/// The PNG file bytes of an image.
inline std::vector<std::uint8_t> encode_png(const Image& img) {
  std::vector<std::uint8_t> raw;
  raw.reserve(static_cast<std::size_t>(img.height()) * (1 + 3 * img.width()));
  for (int y = 0; y < img.height(); ++y) {
    raw.push_back(0);  // filter type None
    for (int x = 0; x < img.width(); ++x) {
      const Rgb& p = img.at(x, y);
      raw.insert(raw.end(), {p.r, p.g, p.b});
    }
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::vector<std::uint8_t> packed(packed_size);
  if (compress2(packed.data(), &packed_size, raw.data(), static_cast<uLong>(raw.size()), 6) != Z_OK)
    throw IoError("encode_png: zlib compression failed");
  packed.resize(packed_size);

  std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<std::uint8_t> ihdr;
  detail::put_u32(ihdr, static_cast<std::uint32_t>(img.width()));
  detail::put_u32(ihdr, static_cast<std::uint32_t>(img.height()));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // bit depth 8, colour type RGB, deflate, filter 0, no interlace
  detail::put_chunk(out, "IHDR", ihdr);
  detail::put_chunk(out, "IDAT", packed);
  detail::put_chunk(out, "IEND", {});
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

#pragma once
// A PNG decoder for 8-bit gray and RGB images (ISO/IEC 15948): signature, chunks with their
// CRC-32 checked, IHDR, the concatenated IDAT stream inflated with zlib, and the five row filters
// (None, Sub, Up, Average, Paeth) undone. Adam7 interlacing, palettes, alpha channels and bit
// depths other than 8 are refused with a FormatError that says so; so is any malformed file,
// with the file name and the byte offset or chunk.
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::io {

struct DecodedImage {
  int width = 0, height = 0, channels = 0;  // channels: 1 (gray) or 3 (RGB)
  std::vector<std::uint8_t> pixels;         // [height, width, channels]
};

namespace detail {

inline std::uint32_t read_be32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}

inline std::uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return static_cast<std::uint8_t>(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

// The raw scanlines (a filter byte, then the row) of `size` bytes from a zlib stream.
inline std::vector<std::uint8_t> inflate_exactly(const std::vector<std::uint8_t>& compressed, std::size_t size,
                                                 const std::string& source) {
  std::vector<std::uint8_t> out(size + 1);  // one spare byte reveals surplus data
  z_stream z{};
  if (inflateInit(&z) != Z_OK) throw FormatError("PNG " + source + ": zlib cannot start inflating");
  z.next_in = const_cast<Bytef*>(compressed.data());
  z.avail_in = static_cast<uInt>(compressed.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int status = inflate(&z, Z_FINISH);
  const std::size_t produced = out.size() - z.avail_out;
  const std::string message = z.msg ? z.msg : "";
  inflateEnd(&z);
  if (status != Z_STREAM_END) {
    if (produced > size)
      throw FormatError("PNG " + source + ": the IDAT data inflate to more than the " + std::to_string(size) +
                        " bytes the header implies");
    throw FormatError("PNG " + source + ": corrupt or truncated IDAT zlib stream after " + std::to_string(produced) +
                      " of " + std::to_string(size) + " bytes" + (message.empty() ? "" : " (" + message + ")"));
  }
  if (produced != size)
    throw FormatError("PNG " + source + ": the IDAT data inflate to " + std::to_string(produced) + " bytes, the " +
                      "header implies " + std::to_string(size));
  out.resize(size);
  return out;
}

}  // namespace detail

/// Decodes PNG `bytes` (`source` names them in messages).
inline DecodedImage decode_png(const std::vector<std::uint8_t>& bytes, const std::string& source) {
  static const std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || !std::equal(kSignature, kSignature + 8, bytes.begin()))
    throw FormatError("PNG " + source + ": missing the PNG signature at offset 0");
  DecodedImage img;
  std::vector<std::uint8_t> idat;
  bool have_header = false, have_end = false;
  std::size_t at = 8;
  while (!have_end) {
    if (bytes.size() - at < 12)
      throw FormatError("PNG " + source + ": file ends at byte " + std::to_string(bytes.size()) +
                        " inside a chunk header (no IEND chunk)");
    const std::uint32_t length = detail::read_be32(&bytes[at]);
    const std::string type(bytes.begin() + static_cast<std::ptrdiff_t>(at + 4),
                           bytes.begin() + static_cast<std::ptrdiff_t>(at + 8));
    if (length > 0x7fffffffu || bytes.size() - at - 12 < length)
      throw FormatError("PNG " + source + ": chunk '" + type + "' at offset " + std::to_string(at) + " claims " +
                        std::to_string(length) + " bytes, more than the file holds");
    const std::uint8_t* data = &bytes[at + 8];
    const std::uint32_t stored_crc = detail::read_be32(data + length);
    const auto crc = static_cast<std::uint32_t>(crc32(crc32(0L, nullptr, 0), &bytes[at + 4], length + 4));
    if (crc != stored_crc)
      throw FormatError("PNG " + source + ": CRC mismatch in chunk '" + type + "' at offset " + std::to_string(at));
    if (!have_header && type != "IHDR")
      throw FormatError("PNG " + source + ": first chunk is '" + type + "', expected IHDR");
    if (type == "IHDR") {
      if (have_header || length != 13)
        throw FormatError("PNG " + source + ": malformed or repeated IHDR chunk at offset " + std::to_string(at));
      const std::uint32_t w = detail::read_be32(data), h = detail::read_be32(data + 4);
      const int depth = data[8], color = data[9];
      if (w == 0 || h == 0 || w > (1u << 16) || h > (1u << 16))
        throw FormatError("PNG " + source + ": image size " + std::to_string(w) + "x" + std::to_string(h) +
                          " is zero or larger than 65536");
      if (data[10] != 0 || data[11] != 0)
        throw FormatError("PNG " + source + ": unknown compression or filter method in IHDR");
      if (data[12] == 1)
        throw FormatError("PNG " + source + ": Adam7 interlaced images are not supported; save it without interlacing");
      if (data[12] != 0) throw FormatError("PNG " + source + ": unknown interlace method " + std::to_string(data[12]));
      if (depth != 8 || (color != 0 && color != 2))
        throw FormatError("PNG " + source + ": bit depth " + std::to_string(depth) + " with color type " +
                          std::to_string(color) +
                          " is not supported; only 8-bit gray (color type 0) and RGB (color type 2) are");
      img.width = static_cast<int>(w);
      img.height = static_cast<int>(h);
      img.channels = color == 0 ? 1 : 3;
      have_header = true;
    } else if (type == "IDAT") {
      idat.insert(idat.end(), data, data + length);
    } else if (type == "IEND") {
      have_end = true;
    } else if ((type[0] & 0x20) == 0 && type != "PLTE") {
      throw FormatError("PNG " + source + ": unknown critical chunk '" + type + "' at offset " + std::to_string(at));
    }
    at += 12 + length;
  }
  if (idat.empty()) throw FormatError("PNG " + source + ": no IDAT chunk");
  const std::size_t stride = static_cast<std::size_t>(img.width) * img.channels;
  const std::vector<std::uint8_t> raw =
      detail::inflate_exactly(idat, (stride + 1) * static_cast<std::size_t>(img.height), source);
  img.pixels.resize(stride * static_cast<std::size_t>(img.height));
  const std::size_t bpp = static_cast<std::size_t>(img.channels);
  for (std::size_t y = 0; y < static_cast<std::size_t>(img.height); ++y) {
    const std::uint8_t filter = raw[y * (stride + 1)];
    const std::uint8_t* in = &raw[y * (stride + 1) + 1];
    std::uint8_t* row = &img.pixels[y * stride];
    const std::uint8_t* up = y ? row - stride : nullptr;
    for (std::size_t x = 0; x < stride; ++x) {
      const int a = x >= bpp ? row[x - bpp] : 0, b = up ? up[x] : 0, c = (up && x >= bpp) ? up[x - bpp] : 0;
      int predictor = 0;
      switch (filter) {
        case 0:
          predictor = 0;
          break;
        case 1:
          predictor = a;
          break;
        case 2:
          predictor = b;
          break;
        case 3:
          predictor = (a + b) / 2;
          break;
        case 4:
          predictor = detail::paeth(a, b, c);
          break;
        default:
          throw FormatError("PNG " + source + ": row " + std::to_string(y) + " has filter type " +
                            std::to_string(filter) + ", not 0-4");
      }
      row[x] = static_cast<std::uint8_t>(in[x] + predictor);
    }
  }
  return img;
}

/// Reads and decodes the PNG file at `path`; an IoError if it cannot be read.
inline DecodedImage read_png(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("PNG: cannot open " + path.string());
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return decode_png(bytes, path.string());
}

}  // namespace progdiff::io

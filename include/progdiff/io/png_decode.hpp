#pragma once
// PNG reading through libpng, the maintained reference decoder (PNG is a format users hand us
// from anywhere, so its parser should be the most tested one there is). Every PNG libpng reads
// is accepted: gray images come out as 8-bit gray, color ones as 8-bit RGB; palettes, 16-bit
// samples and Adam7 interlacing are converted, and an alpha channel is composited onto black
// (the background of the data sets this library trains on). A malformed file raises a
// FormatError with the file name and libpng's reason.
#include <png.h>

#include <algorithm>
#include <cstdint>
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

/// Decodes PNG `bytes` (`source` names them in messages).
inline DecodedImage decode_png(const std::vector<std::uint8_t>& bytes, const std::string& source) {
  static const std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || !std::equal(kSignature, kSignature + 8, bytes.begin()))
    throw FormatError("PNG " + source + ": missing the PNG signature at offset 0");
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  auto fail = [&](const char* stage) {
    const std::string why = image.message[0] ? image.message : "unknown error";
    png_image_free(&image);
    return FormatError("PNG " + source + ": " + stage + ": " + why);
  };
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) throw fail("header");
  // A bound on what a file may make us allocate (a 16-byte file can claim 2^31 x 2^31 pixels).
  if (image.width > (1u << 16) || image.height > (1u << 16)) {
    const std::string size = std::to_string(image.width) + "x" + std::to_string(image.height);
    png_image_free(&image);
    throw FormatError("PNG " + source + ": image size " + size + " is larger than 65536");
  }
  const bool color = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
  image.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  DecodedImage img;
  img.width = static_cast<int>(image.width);
  img.height = static_cast<int>(image.height);
  img.channels = color ? 3 : 1;
  img.pixels.resize(PNG_IMAGE_SIZE(image));
  const png_color black{0, 0, 0};
  if (!png_image_finish_read(&image, &black, img.pixels.data(), 0, nullptr)) throw fail("image data");
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

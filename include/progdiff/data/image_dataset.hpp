#pragma once
// ImageDataset: images held in host memory as float in [-1, 1], NCHW, with an integer label
// each; what the loaders produce and the batch iterator reads.
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::data {

struct ImageDataset {
  std::int64_t count = 0, channels = 1, height = 0, width = 0;
  std::vector<float> pixels;         // [count, channels, height, width]
  std::vector<std::int64_t> labels;  // [count]; 0 where the source has no labels

  std::int64_t sample_size() const { return channels * height * width; }

  /// Throws ConfigError unless the buffers match the dimensions.
  void validate(const std::string& where) const {
    require(count >= 0 && channels > 0 && height > 0 && width > 0,
            where + ": dataset dimensions must be positive (channels " + std::to_string(channels) + ", height " +
                std::to_string(height) + ", width " + std::to_string(width) + ")");
    require(static_cast<std::int64_t>(pixels.size()) == count * sample_size() &&
                static_cast<std::int64_t>(labels.size()) == count,
            where + ": " + std::to_string(pixels.size()) + " pixels and " + std::to_string(labels.size()) +
                " labels do not fit " + std::to_string(count) + " images of " + std::to_string(channels) + "x" +
                std::to_string(height) + "x" + std::to_string(width));
  }
};

/// 8-bit intensity v to [-1, 1]: v / 127.5 - 1 (0 -> -1, 255 -> 1).
inline float byte_to_unit_range(std::uint8_t v) { return static_cast<float>(v) / 127.5f - 1.0f; }

/// Pads every image with `fill` to height x width, centred (Fashion-MNIST 28 -> 32 adds 2 on each side).
inline ImageDataset pad_images(const ImageDataset& in, std::int64_t height, std::int64_t width, float fill) {
  in.validate("pad_images");
  require(height >= in.height && width >= in.width, "pad_images: cannot pad " + std::to_string(in.height) + "x" +
                                                        std::to_string(in.width) + " images to " +
                                                        std::to_string(height) + "x" + std::to_string(width));
  ImageDataset out = in;
  out.height = height;
  out.width = width;
  out.pixels.assign(static_cast<std::size_t>(in.count * in.channels * height * width), fill);
  const std::int64_t top = (height - in.height) / 2, left = (width - in.width) / 2;
  for (std::int64_t p = 0; p < in.count * in.channels; ++p)
    for (std::int64_t y = 0; y < in.height; ++y)
      for (std::int64_t x = 0; x < in.width; ++x)
        out.pixels[static_cast<std::size_t>((p * height + y + top) * width + x + left)] =
            in.pixels[static_cast<std::size_t>((p * in.height + y) * in.width + x)];
  return out;
}

}  // namespace progdiff::data

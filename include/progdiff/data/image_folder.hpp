#pragma once
// A user's own images: a folder of PNG files (decoded to 8-bit gray or RGB, all of one size and channel
// count), read in name order into an ImageDataset scaled to [-1, 1]. As torchvision's
// ImageFolder, a folder whose entries are sub-folders gives one class per sub-folder (labels in
// name order); a flat folder gives label 0 to every image.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/io/png_decode.hpp"

namespace progdiff::data {

namespace detail {
inline bool is_png_name(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png";
}
inline std::vector<std::filesystem::path> sorted_entries(const std::filesystem::path& dir, bool directories) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (directories ? e.is_directory() : (e.is_regular_file() && is_png_name(e.path()))) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace detail

/// The PNG images under `directory` (see above). An IoError if the folder cannot be read or holds
/// no PNG; a FormatError naming the file for an undecodable image or one whose size or channel
/// count differs from the first.
inline ImageDataset load_image_folder(const std::filesystem::path& directory) {
  std::error_code ec;
  if (!std::filesystem::is_directory(directory, ec))
    throw IoError("image folder " + directory.string() + " does not exist or is not a directory");
  std::vector<std::pair<std::filesystem::path, std::int64_t>> files;
  const auto classes = detail::sorted_entries(directory, true);
  if (classes.empty()) {
    for (const auto& f : detail::sorted_entries(directory, false)) files.emplace_back(f, 0);
  } else {
    for (std::size_t c = 0; c < classes.size(); ++c)
      for (const auto& f : detail::sorted_entries(classes[c], false))
        files.emplace_back(f, static_cast<std::int64_t>(c));
  }
  if (files.empty()) throw IoError("image folder " + directory.string() + " holds no .png file");
  ImageDataset ds;
  for (const auto& [path, label] : files) {
    const io::DecodedImage img = io::read_png(path);
    if (ds.count == 0) {
      ds.channels = img.channels;
      ds.height = img.height;
      ds.width = img.width;
    } else if (img.channels != ds.channels || img.height != ds.height || img.width != ds.width) {
      throw FormatError("image folder: " + path.string() + " is " + std::to_string(img.width) + "x" +
                        std::to_string(img.height) + " with " + std::to_string(img.channels) +
                        " channel(s), the first image is " + std::to_string(ds.width) + "x" +
                        std::to_string(ds.height) + " with " + std::to_string(ds.channels));
    }
    // [H, W, C] interleaved -> [C, H, W] planes
    const std::size_t plane = static_cast<std::size_t>(img.height) * img.width, base = ds.pixels.size();
    ds.pixels.resize(base + plane * img.channels);
    for (std::size_t p = 0; p < plane; ++p)
      for (int c = 0; c < img.channels; ++c)
        ds.pixels[base + c * plane + p] = byte_to_unit_range(img.pixels[p * img.channels + c]);
    ds.labels.push_back(label);
    ++ds.count;
  }
  return ds;
}

}  // namespace progdiff::data

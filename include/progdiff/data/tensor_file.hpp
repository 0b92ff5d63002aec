#pragma once
// Images from a tensor file: a NumPy .npy array or one tensor of a safetensors file, of shape
// [N, H, W] (one channel) or [N, C, H, W]. Unsigned-byte data are scaled to [-1, 1]
// (v / 127.5 - 1); floating data are taken as they are, so they should already lie in [-1, 1].
// Labels are 0 unless the safetensors file holds a `labels` tensor of N integers.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/data/npy.hpp"
#include "progdiff/io/safetensors.hpp"

namespace progdiff::data {

namespace detail {
inline ImageDataset images_from_array(const std::vector<std::int64_t>& shape, std::vector<float> values,
                                      const std::string& where) {
  if (shape.size() != 3 && shape.size() != 4)
    throw FormatError(where + ": expected images of shape [N, H, W] or [N, C, H, W], got " + io::shape_string(shape));
  ImageDataset ds;
  ds.count = shape[0];
  ds.channels = shape.size() == 4 ? shape[1] : 1;
  ds.height = shape[shape.size() - 2];
  ds.width = shape[shape.size() - 1];
  if (ds.channels < 1 || ds.height < 1 || ds.width < 1)
    throw FormatError(where + ": image dimensions in shape " + io::shape_string(shape) + " must be positive");
  ds.pixels = std::move(values);
  ds.labels.assign(static_cast<std::size_t>(ds.count), 0);
  return ds;
}
}  // namespace detail

/// The images of the .npy file or of tensor `tensor` of the .safetensors file at `path` (by
/// extension; `tensor` may be empty when the safetensors file holds one tensor besides `labels`).
inline ImageDataset load_tensor_file(const std::filesystem::path& path, const std::string& tensor = "") {
  const std::string ext = path.extension().string();
  if (ext == ".npy") {
    NpyArray a = read_npy(path);
    std::vector<float> values(a.values.size());
    for (std::size_t i = 0; i < values.size(); ++i)
      values[i] = a.descr == "|u1" ? byte_to_unit_range(static_cast<std::uint8_t>(a.values[i]))
                                   : static_cast<float>(a.values[i]);
    return detail::images_from_array(a.shape, std::move(values), path.string());
  }
  if (ext != ".safetensors")
    throw ConfigError("tensor file " + path.string() + ": expected a .npy or .safetensors file");
  const io::SafetensorsFile f = io::read_safetensors(path);
  std::string name = tensor;
  if (name.empty()) {
    for (const auto& [key, record] : f.tensors)
      if (key != "labels") {
        if (!name.empty())
          throw ConfigError("tensor file " + path.string() + " holds several tensors ('" + name + "', '" + key +
                            "', ...); name the one that holds the images");
        name = key;
      }
    if (name.empty()) throw FormatError("tensor file " + path.string() + " holds no image tensor");
  }
  const io::TensorRecord& r = f.at(name);
  std::vector<float> values;
  if (r.dtype == io::DType::U8) {
    for (auto v : f.values<std::uint8_t>(name)) values.push_back(byte_to_unit_range(v));
  } else {
    values = f.values<float>(name);
  }
  ImageDataset ds = detail::images_from_array(r.shape, std::move(values), path.string() + ": tensor '" + name + "'");
  if (f.contains("labels")) {
    auto labels = f.values<std::int64_t>("labels");
    if (static_cast<std::int64_t>(labels.size()) != ds.count)
      throw FormatError(path.string() + ": tensor 'labels' holds " + std::to_string(labels.size()) + " values for " +
                        std::to_string(ds.count) + " images");
    ds.labels = std::move(labels);
  }
  return ds;
}

}  // namespace progdiff::data

#pragma once
// Fashion-MNIST (Xiao et al. 2017) from its gzipped IDX files, as Debian's dataset-fashion-mnist
// installs them in /usr/share/datasets/fashion-mnist: 60000 training and 10000 test images of
// 28x28 8-bit gray, labels 0-9. Loaded as an ImageDataset scaled to [-1, 1] and padded with the
// background value -1 to 32x32 (the power-of-two size U-Nets downsample cleanly).
#include <cstdint>
#include <filesystem>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/data/idx.hpp"
#include "progdiff/data/image_dataset.hpp"

namespace progdiff::data {

inline constexpr const char* kFashionMnistDirectory = "/usr/share/datasets/fashion-mnist";
inline constexpr std::int64_t kFashionMnistClasses = 10;

enum class Split { Train, Test };

/// The file names of one split: {images, labels}.
inline std::pair<std::string, std::string> fashion_mnist_files(Split split) {
  const std::string stem = split == Split::Train ? "train" : "t10k";
  return {stem + "-images-idx3-ubyte.gz", stem + "-labels-idx1-ubyte.gz"};
}

/// One split of Fashion-MNIST from `directory`, the first `max_items` only when > 0, padded to
/// `size` x `size` (28 keeps the original). A missing file is an IoError; a file whose contents
/// do not fit (rank, dimensions, counts, labels) a FormatError naming the file and the problem.
inline ImageDataset load_fashion_mnist(Split split, const std::filesystem::path& directory = kFashionMnistDirectory,
                                       std::int64_t max_items = 0, std::int64_t size = 32) {
  const auto [image_name, label_name] = fashion_mnist_files(split);
  const std::string image_path = (directory / image_name).string(), label_path = (directory / label_name).string();
  for (const auto& path : {image_path, label_path})
    if (!std::filesystem::exists(path))
      throw IoError("Fashion-MNIST: " + path +
                    " does not exist (Debian installs the data set with: apt-get install dataset-fashion-mnist)");
  const IdxArray images = read_idx(image_path, max_items);
  const IdxArray labels = read_idx(label_path, max_items);
  if (images.dims.size() != 3 || images.dims[1] != 28 || images.dims[2] != 28)
    throw FormatError("Fashion-MNIST " + image_path + ": expected images of shape [N, 28, 28], the header gives " +
                      std::to_string(images.dims.size()) + " dimensions" +
                      (images.dims.size() == 3
                           ? " [" + std::to_string(images.dims[0]) + ", " + std::to_string(images.dims[1]) + ", " +
                                 std::to_string(images.dims[2]) + "]"
                           : std::string()));
  if (labels.dims.size() != 1)
    throw FormatError("Fashion-MNIST " + label_path + ": expected labels of rank 1, the header gives rank " +
                      std::to_string(labels.dims.size()));
  if (labels.dims[0] != images.dims[0])
    throw FormatError("Fashion-MNIST " + label_path + ": " + std::to_string(labels.dims[0]) + " labels for " +
                      std::to_string(images.dims[0]) + " images in " + image_path);
  ImageDataset ds;
  ds.count = images.dims[0];
  ds.height = 28;
  ds.width = 28;
  ds.pixels.resize(images.values.size());
  for (std::size_t i = 0; i < images.values.size(); ++i) ds.pixels[i] = byte_to_unit_range(images.values[i]);
  ds.labels.resize(labels.values.size());
  for (std::size_t i = 0; i < labels.values.size(); ++i) {
    if (labels.values[i] >= kFashionMnistClasses)
      throw FormatError("Fashion-MNIST " + label_path + ": label " + std::to_string(labels.values[i]) + " of item " +
                        std::to_string(i) + " is not a class 0-9");
    ds.labels[i] = labels.values[i];
  }
  return size == 28 ? ds : pad_images(ds, size, size, -1.0f);
}

}  // namespace progdiff::data

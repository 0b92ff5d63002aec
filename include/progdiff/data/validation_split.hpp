#pragma once
// The validation slice of every selection: whatever chooses (TDC's proxy search and pruning
// criteria, a step count, k, early stopping) is scored on images held out of the TRAINING split,
// never on the test split, which is read only for the final numbers. Choosing on the test split
// and then reporting on it would overstate what the chosen model does on unseen data.
//
//   auto [fit, validation] = data::split_validation(train_split, 5000);   // the last 5000 images
//   tdc::run_tdc(base, partition, schedule, fit, validation, options);
//
// The slice is the last `count` images, so the fitting part is a prefix of the split and a run
// with another validation size still trains on the same first images.
#include <cstdint>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/data/image_dataset.hpp"

namespace progdiff::data {

/// The images a model trains on and the ones that select among its choices; disjoint.
struct ValidationSplit {
  ImageDataset fit;         // the first count - validation images of the split
  ImageDataset validation;  // the last `validation` images
};

/// Images [first, first + n) of `d`, with their labels.
inline ImageDataset image_range(const ImageDataset& d, std::int64_t first, std::int64_t n) {
  d.validate("image_range");
  require(first >= 0 && n >= 0 && first + n <= d.count, "image_range: images [" + std::to_string(first) + ", " +
                                                            std::to_string(first + n) + ") are not inside the " +
                                                            std::to_string(d.count) + " of the dataset");
  ImageDataset out;
  out.count = n, out.channels = d.channels, out.height = d.height, out.width = d.width;
  const std::int64_t s = d.sample_size();
  out.pixels.assign(d.pixels.begin() + first * s, d.pixels.begin() + (first + n) * s);
  out.labels.assign(d.labels.begin() + first, d.labels.begin() + first + n);
  return out;
}

/// The last `validation` images of `train` held out, the rest to fit on. ConfigError unless
/// 1 <= validation < train.count (both parts must hold images).
inline ValidationSplit split_validation(const ImageDataset& train, std::int64_t validation) {
  train.validate("split_validation");
  require(validation >= 1 && validation < train.count,
          "split_validation: " + std::to_string(validation) + " validation images out of " +
              std::to_string(train.count) + " training images; it must lie in [1, " + std::to_string(train.count - 1) +
              "] so that both parts hold images");
  return {image_range(train, 0, train.count - validation), image_range(train, train.count - validation, validation)};
}

}  // namespace progdiff::data

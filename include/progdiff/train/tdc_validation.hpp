#pragma once
// The validation slice of every selection: whatever chooses (TDC's proxy search and pruning
// criteria, a step count, k, early stopping) is scored on images held out of the TRAINING split,
// never on the test split, which is read only for the final numbers. Choosing on the test split
// and then reporting on it would overstate what the chosen model does on unseen data.
//
//   auto [fit, validation] = train::split_validation(train_split, 5000);   // the last 5000 images
//   train::run_tdc(base, partition, schedule, fit, validation, options);
//   // or, the same in one call: train::run_tdc(base, partition, schedule, train_split, options)
//
// The slice is the last `count` images, so the fitting part is a prefix of the split and a run
// with another validation size still trains on the same first images.
#include <cstdint>
#include <string>
#include <utility>

#include "progdiff/core/error.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/train/tdc_pipeline.hpp"

namespace progdiff::train {

/// The images a model trains on and the ones that select among its choices; disjoint.
struct ValidationSplit {
  data::ImageDataset fit;         // the first count - validation images of the split
  data::ImageDataset validation;  // the last `validation` images
};

/// Images [first, first + n) of `d`, with their labels.
inline data::ImageDataset image_range(const data::ImageDataset& d, std::int64_t first, std::int64_t n) {
  d.validate("image_range");
  require(first >= 0 && n >= 0 && first + n <= d.count, "image_range: images [" + std::to_string(first) + ", " +
                                                            std::to_string(first + n) + ") are not inside the " +
                                                            std::to_string(d.count) + " of the dataset");
  data::ImageDataset out;
  out.count = n, out.channels = d.channels, out.height = d.height, out.width = d.width;
  const std::int64_t s = d.sample_size();
  out.pixels.assign(d.pixels.begin() + first * s, d.pixels.begin() + (first + n) * s);
  out.labels.assign(d.labels.begin() + first, d.labels.begin() + first + n);
  return out;
}

/// The last `validation` images of `train` held out, the rest to fit on. ConfigError unless
/// 1 <= validation < train.count (both parts must hold images).
inline ValidationSplit split_validation(const data::ImageDataset& train, std::int64_t validation) {
  train.validate("split_validation");
  require(validation >= 1 && validation < train.count,
          "split_validation: " + std::to_string(validation) + " validation images out of " +
              std::to_string(train.count) + " training images; it must lie in [1, " + std::to_string(train.count - 1) +
              "] so that both parts hold images");
  return {image_range(train, 0, train.count - validation), image_range(train, train.count - validation, validation)};
}

/// run_tdc on the training split alone: its last options.validation_images images select the
/// pruning schemes (and give the report's validation losses), the others are fine-tuned on.
template <class Net, schedule::NoiseSchedule Schedule>
TdcResult<Net> run_tdc(model::Progressive<Net>& base, group::Partition partition, const Schedule& schedule,
                       const data::ImageDataset& train_split, const TdcOptions& options, TdcStepCallback on_step = {}) {
  const ValidationSplit split = split_validation(train_split, options.validation_images);
  return run_tdc(base, std::move(partition), schedule, split.fit, split.validation, options, std::move(on_step));
}

}  // namespace progdiff::train

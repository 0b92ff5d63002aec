#pragma once
// The test split, sealed until every choice is made. The job reaches its images only through
// final_numbers(), which the evaluation calls after training; a read before that (a selection
// that would score choices on the test images and then report on them) is an error naming what
// asked, not a silent bias. Choices are scored on the validation images held out of the
// training split (--validation-images) instead.
#include <cstdint>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/data/image_dataset.hpp"

namespace job {

class SealedTestSplit {
 public:
  explicit SealedTestSplit(const progdiff::data::ImageDataset& data) : data_(data) {}
  SealedTestSplit(const SealedTestSplit&) = delete;
  SealedTestSplit& operator=(const SealedTestSplit&) = delete;

  /// From now on the selection is over (training, grouping and pruning are done).
  void open() { open_ = true; }
  bool is_open() const { return open_; }
  /// How many test images there are (a count reveals nothing to select on).
  std::int64_t count() const { return data_.count; }

  /// The test images for the final numbers; ConfigError naming `purpose` while still sealed.
  const progdiff::data::ImageDataset& final_numbers(const std::string& purpose) const {
    if (!open_)
      throw progdiff::ConfigError("the test split was asked for (" + purpose +
                                  ") before the model was chosen and trained; choices must be scored on the "
                                  "validation images held out of the training split");
    return data_;
  }

 private:
  const progdiff::data::ImageDataset& data_;
  bool open_ = false;
};

}  // namespace job

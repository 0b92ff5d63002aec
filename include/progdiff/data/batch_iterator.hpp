#pragma once
// ShufflingBatches: batches of an ImageDataset in a fresh random order each epoch, with optional
// random horizontal flips, as a torch DataLoader(shuffle=True) with RandomHorizontalFlip would
// give, but reproducible: the order of epoch e is a Fisher-Yates shuffle driven by Philox
// (seed, stream 2e) and the flip of sample i in epoch e is Philox (seed, stream 2e + 1, i) < 1/2.
// So the iterator's whole state is (seed, epoch, offset): a checkpoint stores those integers and a
// resumed run sees exactly the batches an uninterrupted one would.
// The iterator refers to the dataset, which must outlive it.
#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/math/philox.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/data/image_dataset.hpp"

namespace progdiff::data {

struct BatchConfig {
  std::int64_t batch_size = 64;
  std::uint64_t seed = 0;
  bool shuffle = true;
  bool random_flip = true;
  bool drop_last = true;  // an epoch's last partial batch is skipped (false: returned short)
};

template <class T, class B>
struct Batch {
  Tensor<T, B> images;                // [n, C, H, W]
  std::vector<std::int64_t> labels;   // [n]
  std::vector<std::int64_t> indices;  // [n] positions in the dataset
  std::int64_t epoch = 0;
};

class ShufflingBatches {
 public:
  ShufflingBatches(const ImageDataset& dataset, BatchConfig config) : dataset_(&dataset), config_(config) {
    dataset.validate("ShufflingBatches");
    require(config.batch_size >= 1,
            "ShufflingBatches: batch_size must be >= 1, got " + std::to_string(config.batch_size));
    require(dataset.count >= (config.drop_last ? config.batch_size : 1),
            "ShufflingBatches: " + std::to_string(dataset.count) + " images cannot fill one batch of " +
                std::to_string(config.batch_size));
    build_order();
  }

  /// The next batch; a new epoch (with a new order) starts when the current one is used up.
  template <class T = float, class B = backend::Cpu>
  Batch<T, B> next() {
    const std::int64_t n = dataset_->count;
    if (offset_ + (config_.drop_last ? config_.batch_size : 1) > n) {
      ++epoch_;
      offset_ = 0;
      build_order();
    }
    const std::int64_t size = std::min(config_.batch_size, n - offset_);
    const std::int64_t c = dataset_->channels, h = dataset_->height, w = dataset_->width, per = c * h * w;
    std::vector<T> host(static_cast<std::size_t>(size * per));
    Batch<T, B> batch;
    batch.epoch = epoch_;
    for (std::int64_t k = 0; k < size; ++k) {
      const std::int64_t i = order_[static_cast<std::size_t>(offset_ + k)];
      batch.indices.push_back(i);
      batch.labels.push_back(dataset_->labels[static_cast<std::size_t>(i)]);
      const bool flip = config_.random_flip && flipped(i);
      const float* src = dataset_->pixels.data() + i * per;
      T* dst = host.data() + k * per;
      for (std::int64_t row = 0; row < c * h; ++row)
        for (std::int64_t x = 0; x < w; ++x) dst[row * w + x] = static_cast<T>(src[row * w + (flip ? w - 1 - x : x)]);
    }
    offset_ += size;
    batch.images = Tensor<T, B>::from_host(Shape{size, c, h, w}, host);
    return batch;
  }

  /// Whether sample `index` is flipped in the current epoch.
  bool flipped(std::int64_t index) const {
    return math::philox_uniform(config_.seed, 2 * static_cast<std::uint64_t>(epoch_) + 1,
                                static_cast<std::uint64_t>(index)) <= 0.5f;
  }

  std::int64_t epoch() const { return epoch_; }
  std::int64_t offset() const { return offset_; }
  const BatchConfig& config() const { return config_; }

  /// Stores seed, epoch and offset under `name`.seed / .epoch / .offset (e.g. a checkpoint's counters).
  void save_position(std::map<std::string, std::int64_t>& counters, const std::string& name) const {
    counters[name + ".seed"] = static_cast<std::int64_t>(config_.seed);
    counters[name + ".epoch"] = epoch_;
    counters[name + ".offset"] = offset_;
  }
  /// Continues from a saved position; a ConfigError if it was saved under another seed or lies
  /// outside this dataset.
  void restore_position(const std::map<std::string, std::int64_t>& counters, const std::string& name) {
    auto get = [&](const std::string& key) {
      auto it = counters.find(name + "." + key);
      if (it == counters.end())
        throw ConfigError("ShufflingBatches: no saved position counter '" + name + "." + key + "'");
      return it->second;
    };
    const std::int64_t seed = get("seed"), epoch = get("epoch"), offset = get("offset");
    require(static_cast<std::uint64_t>(seed) == config_.seed,
            "ShufflingBatches: the saved position '" + name + "' is for seed " + std::to_string(seed) +
                ", this iterator uses seed " + std::to_string(config_.seed));
    require(epoch >= 0 && offset >= 0 && offset <= dataset_->count,
            "ShufflingBatches: saved position epoch " + std::to_string(epoch) + ", offset " + std::to_string(offset) +
                " lies outside a dataset of " + std::to_string(dataset_->count));
    epoch_ = epoch;
    offset_ = offset;
    build_order();
  }

 private:
  void build_order() {
    order_.resize(static_cast<std::size_t>(dataset_->count));
    std::iota(order_.begin(), order_.end(), std::int64_t{0});
    if (!config_.shuffle) return;
    Generator gen(config_.seed, 2 * static_cast<std::uint64_t>(epoch_));
    for (std::size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[gen.below(i)]);
  }

  const ImageDataset* dataset_;
  BatchConfig config_;
  std::int64_t epoch_ = 0, offset_ = 0;
  std::vector<std::int64_t> order_;
};

}  // namespace progdiff::data

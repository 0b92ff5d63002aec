#pragma once
// Training, evaluating, saving and loading the FashionClassifier, and the one call a training job
// needs to get a classifier for its metrics:
//
//   auto c = progdiff::metrics::load_or_train_classifier("runs/classifier.safetensors",
//                                                        "/usr/share/datasets/fashion-mnist", 0);
//   // c.model: FashionClassifier<float, backend::Cpu>, c.test_accuracy, c.trained (false: loaded)
//
// loads the classifier cached at the path, or trains one on the Fashion-MNIST training split with
// the default ClassifierTrainingConfig (a few minutes on two cores), measures its accuracy on the
// test split and saves it there (atomically) for the next run. A file at the path that does not
// hold a classifier of the default structure is an error (ConfigError / FormatError), never
// silently replaced.
//
// The file is a io::save_checkpoint safetensors file: parameters under "model.", the structure
// in the metadata (ClassifierConfig::description), and the counters "test_correct", "test_count"
// and "seed".
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/data/batch_iterator.hpp"
#include "progdiff/data/fashion_mnist.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/metrics/classifier.hpp"
#include "progdiff/metrics/cross_entropy.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/optim/lr_schedule.hpp"

namespace progdiff::metrics {

struct ClassifierTrainingConfig {
  std::int64_t epochs = 3;
  std::int64_t batch_size = 128;
  double lr = 3e-3;  // peak; linear warm-up, then half-cosine decay to zero over the run
  std::int64_t warmup_steps = 100;
  double weight_decay = 0.05;
  bool random_flip = true;     // horizontal flips (clothes are roughly mirror-symmetric)
  std::int64_t max_steps = 0;  // > 0: stop after this many optimizer steps
  std::int64_t eval_batch_size = 500;
  std::uint64_t seed = 0;  // initialization and batch order
};

/// What one epoch of training reports (also passed to the progress callback).
struct ClassifierEpoch {
  std::int64_t epoch = 0, steps = 0;
  double train_loss = 0.0, train_accuracy = 0.0;  // over the epoch's batches, as trained
  double test_accuracy = 0.0;                     // after the epoch; < 0 when no test split is given
  double seconds = 0.0;                           // wall time since training began
};

struct ClassifierTrainingReport {
  std::vector<ClassifierEpoch> epochs;
  double test_accuracy = -1.0;
  std::int64_t steps = 0;
  double seconds = 0.0;
};

/// Images [begin, end) of `dataset` as a tensor [end - begin, C, H, W] on back end B.
template <class T, class B>
Tensor<T, B> dataset_images(const data::ImageDataset& dataset, std::int64_t begin, std::int64_t end) {
  dataset.validate("dataset_images");
  require<ShapeError>(0 <= begin && begin <= end && end <= dataset.count,
                      "dataset_images: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                          ") outside a dataset of " + std::to_string(dataset.count));
  const std::int64_t per = dataset.sample_size();
  const auto first = dataset.pixels.begin() + begin * per, last = dataset.pixels.begin() + end * per;
  const std::vector<T> host(first, last);
  return Tensor<T, B>::from_host(Shape{end - begin, dataset.channels, dataset.height, dataset.width}, host);
}

/// The fraction of `dataset` whose predicted class equals its label.
template <class T, class B>
double classifier_accuracy(FashionClassifier<T, B>& model, const data::ImageDataset& dataset,
                           std::int64_t batch_size = 500) {
  require(dataset.count > 0 && batch_size > 0, "classifier_accuracy: needs a non-empty dataset and batch size >= 1");
  const InferenceMode inference;
  std::int64_t correct = 0;
  for (std::int64_t begin = 0; begin < dataset.count; begin += batch_size) {
    const std::int64_t end = std::min(dataset.count, begin + batch_size);
    const std::vector<std::int64_t> predicted = argmax_rows(model.forward(dataset_images<T, B>(dataset, begin, end)));
    for (std::int64_t i = begin; i < end; ++i)
      correct += predicted[static_cast<std::size_t>(i - begin)] == dataset.labels[static_cast<std::size_t>(i)];
  }
  return static_cast<double>(correct) / static_cast<double>(dataset.count);
}

/// Trains `model` (initialized here from config.seed) with AdamW on softmax cross-entropy; after
/// each epoch measures the accuracy on `test` when it is non-null and calls `on_epoch`.
template <class T, class B>
ClassifierTrainingReport train_classifier(FashionClassifier<T, B>& model, const data::ImageDataset& train_set,
                                          const data::ImageDataset* test_set, const ClassifierTrainingConfig& config,
                                          const std::function<void(const ClassifierEpoch&)>& on_epoch = {}) {
  require(config.epochs > 0 && config.batch_size > 0, "train_classifier: epochs and batch_size must be positive");
  require(train_set.count >= config.batch_size,
          "train_classifier: the training set holds " + std::to_string(train_set.count) +
              " images, less than one batch of " + std::to_string(config.batch_size));
  Generator init(config.seed, 1);
  model.initialize(init);
  data::ShufflingBatches batches(train_set, {config.batch_size, config.seed, true, config.random_flip, true});
  const std::int64_t per_epoch = train_set.count / config.batch_size;
  std::int64_t total = per_epoch * config.epochs;
  if (config.max_steps > 0) total = std::min(total, config.max_steps);
  const optim::LrSchedule schedule{config.lr, std::min(config.warmup_steps, total - 1), optim::LrDecay::Cosine, total,
                                   0.0};
  optim::AdamW<T, B> optimizer(optim::AdamWConfig{0.9, 0.999, 1e-8, config.weight_decay});

  ClassifierTrainingReport report;
  const auto start = std::chrono::steady_clock::now();
  ClassifierEpoch current;
  double loss_sum = 0.0;
  std::int64_t correct = 0, seen = 0;
  auto finish_epoch = [&](std::int64_t epoch) {
    current.epoch = epoch;
    current.steps = report.steps;
    current.train_loss = seen ? loss_sum / static_cast<double>(seen) : 0.0;
    current.train_accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    current.test_accuracy = test_set ? classifier_accuracy(model, *test_set, config.eval_batch_size) : -1.0;
    current.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report.epochs.push_back(current);
    if (on_epoch) on_epoch(current);
    loss_sum = 0.0;
    correct = seen = 0;
  };
  for (std::int64_t step = 0; step < total; ++step) {
    const auto batch = batches.next<T, B>();
    if (step > 0 && step % per_epoch == 0) finish_epoch(step / per_epoch - 1);
    nn::zero_grad(model);
    const auto result = softmax_cross_entropy(model.forward(batch.images), std::span<const std::int64_t>(batch.labels));
    model.backward(result.grad);
    optimizer.step(model, schedule.at(step));
    ++report.steps;
    const auto n = static_cast<std::int64_t>(batch.labels.size());
    loss_sum += result.loss * static_cast<double>(n);
    correct += result.correct;
    seen += n;
  }
  finish_epoch((total - 1) / per_epoch);
  report.test_accuracy = report.epochs.back().test_accuracy;
  report.seconds = report.epochs.back().seconds;
  return report;
}

/// Saves the classifier with its test accuracy (correct of count) and training seed.
template <class T, class B>
void save_classifier(const std::filesystem::path& path, FashionClassifier<T, B>& model, std::int64_t test_correct,
                     std::int64_t test_count, std::uint64_t seed) {
  io::TrainingState state;
  state.counters["test_correct"] = test_correct;
  state.counters["test_count"] = test_count;
  state.counters["seed"] = static_cast<std::int64_t>(seed);
  io::save_checkpoint(path, model, model.config().description(), state);
}

/// Loads a classifier saved by save_classifier into `model` (whose structure the file must match);
/// returns the stored test accuracy, or -1 when the file holds none.
template <class T, class B>
double load_classifier(const std::filesystem::path& path, FashionClassifier<T, B>& model) {
  const io::TrainingState state = io::load_checkpoint(path, model, model.config().description());
  const auto c = state.counters.find("test_correct"), n = state.counters.find("test_count");
  if (c == state.counters.end() || n == state.counters.end() || n->second <= 0) return -1.0;
  return static_cast<double>(c->second) / static_cast<double>(n->second);
}

template <class T = float, class B = backend::Cpu>
struct TrainedClassifier {
  FashionClassifier<T, B> model;
  double test_accuracy = -1.0;
  bool trained = false;             // false: loaded from the cache file
  ClassifierTrainingReport report;  // empty when loaded
};

/// The classifier cached at `path`, or one trained on Fashion-MNIST from `data_dir` with `seed`
/// and saved at `path` (see the top of this header).
template <class T = float, class B = backend::Cpu>
TrainedClassifier<T, B> load_or_train_classifier(const std::filesystem::path& path,
                                                 const std::filesystem::path& data_dir = data::kFashionMnistDirectory,
                                                 std::uint64_t seed = 0,
                                                 const std::function<void(const ClassifierEpoch&)>& on_epoch = {}) {
  TrainedClassifier<T, B> out;
  if (std::filesystem::exists(path)) {
    out.test_accuracy = load_classifier(path, out.model);
    return out;
  }
  const data::ImageDataset train_set = data::load_fashion_mnist(data::Split::Train, data_dir);
  const data::ImageDataset test_set = data::load_fashion_mnist(data::Split::Test, data_dir);
  ClassifierTrainingConfig config;
  config.seed = seed;
  out.report = train_classifier(out.model, train_set, &test_set, config, on_epoch);
  out.test_accuracy = out.report.test_accuracy;
  out.trained = true;
  const auto correct = static_cast<std::int64_t>(std::llround(out.test_accuracy * static_cast<double>(test_set.count)));
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  save_classifier(path, out.model, correct, test_set.count, seed);
  return out;
}

}  // namespace progdiff::metrics

#if PROGDIFF_PRECOMPILED
namespace progdiff::metrics {
extern template Tensor<float, backend::Cpu> dataset_images<float, backend::Cpu>(const data::ImageDataset&, std::int64_t,
                                                                                std::int64_t);
extern template double classifier_accuracy(FashionClassifier<float, backend::Cpu>&, const data::ImageDataset&,
                                           std::int64_t);
extern template ClassifierTrainingReport train_classifier(FashionClassifier<float, backend::Cpu>&,
                                                          const data::ImageDataset&, const data::ImageDataset*,
                                                          const ClassifierTrainingConfig&,
                                                          const std::function<void(const ClassifierEpoch&)>&);
extern template void save_classifier(const std::filesystem::path&, FashionClassifier<float, backend::Cpu>&,
                                     std::int64_t, std::int64_t, std::uint64_t);
extern template double load_classifier(const std::filesystem::path&, FashionClassifier<float, backend::Cpu>&);
extern template TrainedClassifier<float, backend::Cpu> load_or_train_classifier<float, backend::Cpu>(
    const std::filesystem::path&, const std::filesystem::path&, std::uint64_t,
    const std::function<void(const ClassifierEpoch&)>&);
}  // namespace progdiff::metrics
#endif

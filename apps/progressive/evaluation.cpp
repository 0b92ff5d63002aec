// evaluation.hpp's definitions, compiled once for every variant of the main job.
#include "evaluation.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "job.hpp"
#include "progdiff/backend/cpu/matmul_precision.hpp"
#include "progdiff/io/image_grid.hpp"
#include "progdiff/io/png_decode.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/metrics/classifier_training.hpp"
#include "progdiff/metrics/fashion_frechet.hpp"
#include "progdiff/metrics/feature_statistics.hpp"
#include "progdiff/metrics/frechet.hpp"

namespace job {
namespace {

namespace fs = std::filesystem;

/// The metric's classifier: loaded from its file, or trained and saved there. The tiny
/// configuration trains a short one of its own (its distances compare only with each other).
pd::metrics::TrainedClassifier<float, Cpu> classifier(const Options& o, const pd::data::ImageDataset& train,
                                                      const pd::data::ImageDataset& test) {
  // A tiny run keeps its short classifier beside its outputs unless --classifier names one (which
  // runs to be compared must share: distances in different classifiers' features do not compare).
  const fs::path path = o.tiny && !o.classifier_given ? o.out / "classifier_tiny.safetensors" : o.classifier;
  pd::metrics::TrainedClassifier<float, Cpu> c;
  if (fs::exists(path)) {
    c.test_accuracy = pd::metrics::load_classifier(path, c.model);
    std::printf("classifier %s: test accuracy %.4f\n", path.string().c_str(), c.test_accuracy);
    return c;
  }
  pd::metrics::ClassifierTrainingConfig config;
  config.seed = 0;  // one classifier for every run, whatever the job's seed
  // Three epochs (about 89% test accuracy, under a minute on 2 cores); any classifier file of
  // the default structure may be given instead (--classifier).
  config.epochs = 3;
  if (o.tiny) config.max_steps = 20, config.batch_size = 32, config.warmup_steps = 5;
  std::printf("training the classifier (saved to %s for later runs)\n", path.string().c_str());
  c.report = pd::metrics::train_classifier(c.model, train, &test, config, [](const pd::metrics::ClassifierEpoch& e) {
    std::printf("  epoch %lld: train loss %.4f, test accuracy %.4f, %.0f s\n", static_cast<long long>(e.epoch + 1),
                e.train_loss, e.test_accuracy, e.seconds);
    std::fflush(stdout);
  });
  c.test_accuracy = c.report.test_accuracy;
  c.trained = true;
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  pd::metrics::save_classifier(path, c.model, std::llround(c.test_accuracy * static_cast<double>(test.count)),
                               test.count, config.seed);
  return c;
}

}  // namespace

void evaluate_samples(const Options& o, const pd::Tensor<float, Cpu>& samples, const pd::data::ImageDataset& train,
                      const pd::data::ImageDataset& test, Report& report) {
  const auto host = samples.to_host();
  std::int64_t bad = 0;
  double mean = 0.0;
  for (float v : host) {
    bad += !std::isfinite(v);
    mean += v;
  }
  report.sample_mean = mean / static_cast<double>(host.size());
  if (bad) throw std::runtime_error(std::to_string(bad) + " sampled pixel values are not finite");
  // The samples as drawn (before the grid's 8-bit rounding), for other metrics and for comparing
  // runs, e.g. the same seed on the CPU and on the GPU (examples/04's --compare-with).
  pd::io::SafetensorsFile raw;
  pd::io::put_tensor(raw, "samples", samples);
  raw.metadata = {{"seed", std::to_string(o.seed)},
                  {"ddim_steps", std::to_string(o.ddim_steps)},
                  {"backend", o.device == Device::Cuda ? "cuda" : "cpu"}};
  pd::io::write_safetensors(o.out / "samples.safetensors", raw);
  if (!o.compare_with.empty()) {
    char line[512];
    const double worst = compare_samples(host, samples.shape(), o.compare_with, o.tolerance);
    std::snprintf(line, sizeof line,
                  "samples against %s: largest difference %.3e (|a - b| / max(1, |b|)), tolerance %.0e: %s",
                  o.compare_with.string().c_str(), worst, o.tolerance, worst <= o.tolerance ? "passed" : "FAILED");
    report.notes.push_back(line);
    report.comparison_failed = !(worst <= o.tolerance);
  }
  const fs::path grid_path = o.out / "samples.png";
  pd::io::write_image_grid(grid_path, samples.slice(0, o.grid), {.columns = 8});
  const auto decoded = pd::io::read_png(grid_path);  // the file must decode
  std::printf("wrote %s (%d x %d)\n", grid_path.string().c_str(), decoded.width, decoded.height);

  if (o.fid_samples >= 2) {
    // The metric stays fp32 under --bf16: the distance then measures the samples, not the
    // classifier's precision.
    const pd::backend::cpu::MatmulPrecisionScope metric_precision(pd::backend::cpu::MatmulPrecision::fp32);
    auto c = timed(report, "classifier", [&] { return classifier(o, train, test); });
    report.classifier_accuracy = c.test_accuracy;
    report.classifier_trained = c.trained;
    timed(report, "Frechet distance", [&] {
      // The distance of `fid_samples` generated images to the test split, and of as many
      // training images: the floor a perfect model would reach at this sample count.
      const auto real = pd::metrics::classifier_feature_statistics(c.model, test);
      report.frechet = pd::metrics::frechet_distance(
          real, pd::metrics::classifier_feature_statistics(c.model, samples.slice(0, o.fid_samples)));
      const std::int64_t n = std::min(o.fid_samples, train.count);
      report.frechet_train =
          pd::metrics::frechet_distance(real, pd::metrics::classifier_feature_statistics(c.model, train, 0, n));
      report.frechet_samples = o.fid_samples;
      report.frechet_train_samples = n;
      if (!std::isfinite(report.frechet)) throw std::runtime_error("the Frechet distance is not finite");
    });
  }
}

}  // namespace job

// The Fashion-MNIST classifier behind the Fashion Frechet Distance: trains it with AdamW, reports
// the test accuracy after every epoch, saves it (safetensors), loads the file back into a fresh
// model, and prints a sanity table of Frechet distances in its feature space: the noise floor
// between the two halves of the test split, the training split against the test split, the test
// split under growing Gaussian corruption, and pure Gaussian noise.
// The program checks its own results: the final accuracy reaches --min-accuracy, the reloaded
// model predicts exactly as the trained one, the distances grow with the corruption, and noise
// images lie far above real against real.
// Exit status 1 on a failure, 77 (skipped) when the data set is not installed.
//
// usage: progdiff_example_03_classifier [--out classifier.safetensors] [--data DIR] [--seed N]
//                                       [--epochs N] [--max-steps N] [--min-accuracy A]
//                                       [--test-images N]
// --test-images N evaluates on the first N test images (and N training images in the table)
// instead of all 10,000: the sanitized test build's shorter run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/data/fashion_mnist.hpp"
#include "progdiff/metrics/metrics.hpp"

namespace pd = progdiff;
using Cpu = pd::backend::Cpu;
using Images = pd::Tensor<float, Cpu>;

namespace {

struct Options {
  std::filesystem::path out = "classifier.safetensors";
  std::filesystem::path data = pd::data::kFashionMnistDirectory;
  std::uint64_t seed = 0;
  std::int64_t epochs = pd::metrics::ClassifierTrainingConfig{}.epochs;
  std::int64_t max_steps = 0;
  double min_accuracy = 0.88;
  std::int64_t test_images = 0;  // 0: the whole test split
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw pd::ConfigError("flag " + flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--out")
      o.out = value;
    else if (flag == "--data")
      o.data = value;
    else if (flag == "--seed")
      o.seed = std::stoull(value);
    else if (flag == "--epochs")
      o.epochs = std::stoll(value);
    else if (flag == "--max-steps")
      o.max_steps = std::stoll(value);
    else if (flag == "--min-accuracy")
      o.min_accuracy = std::stod(value);
    else if (flag == "--test-images")
      o.test_images = std::stoll(value);
    else
      throw pd::ConfigError("unknown flag " + flag);
  }
  if (o.test_images != 0 && o.test_images < 100)
    throw pd::ConfigError("--test-images: " + std::to_string(o.test_images) + " is below 100 (0 means all)");
  return o;
}

/// The test images with Gaussian noise of standard deviation `sigma` added, clipped to [-1, 1].
Images corrupted(const pd::data::ImageDataset& test, double sigma, std::uint64_t seed) {
  std::vector<float> v = test.pixels;
  pd::Generator gen(seed, 7);
  for (float& x : v) x = std::clamp(x + static_cast<float>(sigma) * gen.normal(), -1.0f, 1.0f);
  return Images::from_host(pd::Shape{test.count, test.channels, test.height, test.width}, v);
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  if (!std::filesystem::exists(opt.data / pd::data::fashion_mnist_files(pd::data::Split::Test).first)) {
    std::printf("skipped: Fashion-MNIST is not installed in %s (apt-get install dataset-fashion-mnist)\n",
                opt.data.c_str());
    return 77;
  }
  const auto train_set = pd::data::load_fashion_mnist(pd::data::Split::Train, opt.data);
  const auto test_set = pd::data::load_fashion_mnist(pd::data::Split::Test, opt.data, opt.test_images);

  pd::metrics::FashionClassifier<float, Cpu> model;
  std::printf("classifier: %lld parameters, %.1f MFLOP per 32x32 image; %lld training, %lld test images\n",
              static_cast<long long>(model.parameter_count()), model.flops(pd::Shape{1, 1, 32, 32}) / 1e6,
              static_cast<long long>(train_set.count), static_cast<long long>(test_set.count));
  pd::metrics::ClassifierTrainingConfig config;
  config.epochs = opt.epochs;
  config.max_steps = opt.max_steps;
  config.seed = opt.seed;
  std::printf("%5s %7s %10s %10s %9s %8s\n", "epoch", "steps", "train loss", "train acc", "test acc", "time s");
  const auto report = pd::metrics::train_classifier(model, train_set, &test_set, config, [](const auto& e) {
    std::printf("%5lld %7lld %10.4f %10.4f %9.4f %8.1f\n", static_cast<long long>(e.epoch),
                static_cast<long long>(e.steps), e.train_loss, e.train_accuracy, e.test_accuracy, e.seconds);
    std::fflush(stdout);
  });
  const auto correct = static_cast<std::int64_t>(std::llround(report.test_accuracy * test_set.count));
  std::printf("final test accuracy: %.4f (%lld of %lld), %lld steps of batch %lld in %.1f s\n", report.test_accuracy,
              static_cast<long long>(correct), static_cast<long long>(test_set.count),
              static_cast<long long>(report.steps), static_cast<long long>(config.batch_size), report.seconds);

  if (std::filesystem::exists(opt.out)) std::filesystem::remove(opt.out);
  pd::metrics::save_classifier(opt.out, model, correct, test_set.count, opt.seed);
  auto reloaded = pd::metrics::load_or_train_classifier(opt.out, opt.data, opt.seed);
  const double reloaded_accuracy = pd::metrics::classifier_accuracy(reloaded.model, test_set);
  std::printf("saved %s; reloaded: stored accuracy %.4f, measured %.4f\n", opt.out.c_str(), reloaded.test_accuracy,
              reloaded_accuracy);

  // The sanity table: every distance from n or n/2 samples per side (n test images), as listed.
  const auto start = std::chrono::steady_clock::now();
  const auto test_stats = pd::metrics::classifier_feature_statistics(model, test_set);
  const std::int64_t n = test_set.count, half = n / 2;
  const auto first_half = pd::metrics::classifier_feature_statistics(model, test_set, 0, half);
  const auto second_half = pd::metrics::classifier_feature_statistics(model, test_set, half, 2 * half);
  const auto train_stats = pd::metrics::classifier_feature_statistics(model, train_set, 0, n);
  struct Row {
    std::string what;
    std::int64_t n1, n2;
    double distance;
  };
  std::vector<Row> rows;
  rows.push_back({"test halves (noise floor)", half, half, pd::metrics::frechet_distance(first_half, second_half)});
  rows.push_back({"train[0:n] vs test", n, n, pd::metrics::frechet_distance(train_stats, test_stats)});
  for (double sigma : {0.05, 0.1, 0.2, 0.4}) {
    const auto stats = pd::metrics::classifier_feature_statistics(model, corrupted(test_set, sigma, opt.seed));
    char label[64];
    std::snprintf(label, sizeof label, "test vs test + N(0, %.2f^2) noise", sigma);
    rows.push_back({label, test_set.count, test_set.count, pd::metrics::frechet_distance(test_stats, stats)});
  }
  {
    Images noise(pd::Shape{test_set.count, 1, 32, 32});
    Cpu::normal<float>(noise.size(), opt.seed, 11, 0, noise.data());
    rows.push_back(
        {"test vs N(0, 1) images", test_set.count, test_set.count,
         pd::metrics::frechet_distance(test_stats, pd::metrics::classifier_feature_statistics(model, noise))});
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\n%-50s %7s %7s %12s\n", "Fashion Frechet Distance", "n1", "n2", "distance");
  for (const auto& r : rows)
    std::printf("%-50s %7lld %7lld %12.4f\n", r.what.c_str(), static_cast<long long>(r.n1),
                static_cast<long long>(r.n2), r.distance);
  std::printf("(%.1f s for the table)\n", seconds);

  bool ok = true;
  auto check = [&](bool condition, const std::string& what) {
    if (!condition) {
      std::printf("FAILED: %s\n", what.c_str());
      ok = false;
    }
  };
  check(report.test_accuracy >= opt.min_accuracy, "test accuracy below " + std::to_string(opt.min_accuracy));
  check(!reloaded.trained && reloaded_accuracy == report.test_accuracy &&
            std::abs(reloaded.test_accuracy - report.test_accuracy) < 1e-12,
        "the reloaded classifier differs from the trained one");
  // The corrupted rows compare each test image with itself plus noise: paired, they carry no
  // sampling noise and may lie below the floor, but must grow with the corruption. Noise images
  // lie far above real data.
  for (std::size_t i = 3; i < rows.size(); ++i)
    check(rows[i].distance > rows[i - 1].distance,
          "distance of '" + rows[i].what + "' not above '" + rows[i - 1].what + "'");
  check(rows.back().distance > 100.0 * std::max(rows[0].distance, rows[1].distance),
        "noise images are not far above the real-data distances");
  std::printf(ok ? "all checks passed\n" : "some checks FAILED\n");
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}

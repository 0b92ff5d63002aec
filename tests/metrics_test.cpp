// The quality metrics against outside references: feature statistics and the Frechet distance
// against NumPy (fixture from tools/fixtures/make_metrics_fixtures.py, where Tr (S1 S2)^(1/2) comes
// from the eigenvalues of the non-symmetric product) and closed forms; softmax cross-entropy and a
// whole two-stage classifier against PyTorch; central differences in double for the cross-entropy,
// the global average pool and the classifier; the denoising loss per group against its expectation;
// a short training run on Fashion-MNIST when the data set is installed.
#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <cmath>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "data_support.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/data/fashion_mnist.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/metrics/metrics.hpp"
#include "progdiff/schedule/schedule.hpp"

namespace progdiff_tests_metrics {

namespace {

namespace pd = progdiff;
namespace metrics = progdiff::metrics;
using Cpu = pd::backend::Cpu;
using pd::ConfigError;
using pd::Shape;
using pd::ShapeError;
template <class T>
using Tensor = pd::Tensor<T, Cpu>;

pd::io::SafetensorsFile fixture(const std::string& name) {
  return pd::io::read_safetensors(std::string(PROGDIFF_FIXTURES_DIR) + "/metrics/" + name + ".safetensors");
}

double scalar(const pd::io::SafetensorsFile& f, const std::string& name) { return f.values<double>(name).at(0); }

Eigen::MatrixXd matrix(const pd::io::SafetensorsFile& f, const std::string& name) {
  const auto& rec = f.at(name);
  const auto v = f.values<double>(name);
  const auto rows = rec.shape.at(0), cols = rec.shape.size() > 1 ? rec.shape[1] : 1;
  Eigen::MatrixXd m(rows, cols);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) m(i, j) = v[static_cast<std::size_t>(i * cols + j)];
  return m;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// A random symmetric positive definite matrix A A^T + 0.1 I.
Eigen::MatrixXd random_spd(std::int64_t d, pd::Generator& gen) {
  Eigen::MatrixXd a(d, d);
  for (std::int64_t i = 0; i < d; ++i)
    for (std::int64_t j = 0; j < d; ++j) a(i, j) = gen.normal<double>();
  return a * a.transpose() + 0.1 * Eigen::MatrixXd::Identity(d, d);
}

}  // namespace

TEST_CASE("FeatureStatistics: streamed batches give NumPy's mean and unbiased covariance") {
  const auto f = fixture("frechet");
  for (const std::string c : {"full", "singular"}) {
    for (const std::string k : {"1", "2"}) {
      const auto& rec = f.at(c + ".x" + k);
      const std::int64_t n = rec.shape[0], d = rec.shape[1];
      const auto x = f.values<double>(c + ".x" + k);
      metrics::FeatureStatistics s(d);
      // Uneven batches, one empty: the merge must not depend on how the rows are split.
      std::int64_t at = 0;
      for (std::int64_t size : {std::int64_t{3}, std::int64_t{0}, std::int64_t{1}, n}) {
        const std::int64_t take = std::min(size, n - at);
        s.add(std::span<const double>(x.data() + at * d, static_cast<std::size_t>(take * d)), take);
        at += take;
      }
      REQUIRE(s.count() == n);
      CHECK((s.mean() - matrix(f, c + ".mean" + k)).cwiseAbs().maxCoeff() < 1e-12);
      CHECK((s.covariance() - matrix(f, c + ".cov" + k)).cwiseAbs().maxCoeff() < 1e-11);
    }
  }
}

TEST_CASE("frechet_distance: equals NumPy's route through the eigenvalues of S1 S2, full rank and singular") {
  const auto f = fixture("frechet");
  for (const std::string c : {"full", "singular"}) {
    const double want = scalar(f, c + ".distance");
    const double got = metrics::frechet_distance(matrix(f, c + ".mean1"), matrix(f, c + ".cov1"),
                                                 matrix(f, c + ".mean2"), matrix(f, c + ".cov2"));
    INFO(c << ": got " << got << ", NumPy " << want);
    // A singular product has eigenvalues that are zero up to rounding (about 1e-16 of its
    // norm); their square roots, about 1e-8 each, enter the trace, so the two routes agree to
    // about 1e-8 relative there (2e-9 measured without FMA contraction), 1e-9 at full rank.
    const double tolerance = c == "full" ? 1e-9 : 1e-7;
    CHECK(std::abs(got - want) < tolerance * std::max(1.0, std::abs(want)));
  }
}

TEST_CASE("frechet_distance: closed forms") {
  pd::Generator gen(21);
  SUBCASE("identical statistics give zero") {
    for (std::int64_t d : {1, 5, 40}) {
      const Eigen::MatrixXd s = random_spd(d, gen);
      const Eigen::VectorXd mu = Eigen::VectorXd::Random(d);
      CHECK(std::abs(metrics::frechet_distance(mu, s, mu, s)) < 1e-9 * s.trace());
    }
  }
  SUBCASE("diagonal covariances: sum (sqrt a - sqrt b)^2 + |mu1 - mu2|^2") {
    const std::int64_t d = 7;
    Eigen::VectorXd a(d), b(d), mu1(d), mu2(d);
    double want = 0.0;
    for (std::int64_t i = 0; i < d; ++i) {
      a(i) = 0.1 + gen.uniform();
      b(i) = i == 3 ? 0.0 : 0.1 + 3.0 * gen.uniform();  // one zero variance: a singular S2
      mu1(i) = gen.normal<double>();
      mu2(i) = gen.normal<double>();
      want += std::pow(std::sqrt(a(i)) - std::sqrt(b(i)), 2) + std::pow(mu1(i) - mu2(i), 2);
    }
    const double got =
        metrics::frechet_distance(mu1, Eigen::MatrixXd(a.asDiagonal()), mu2, Eigen::MatrixXd(b.asDiagonal()));
    CHECK(got == doctest::Approx(want).epsilon(1e-12));
  }
  SUBCASE("a rotation of both Gaussians leaves the distance unchanged") {
    const std::int64_t d = 6;
    const Eigen::MatrixXd s1 = random_spd(d, gen), s2 = random_spd(d, gen);
    const Eigen::VectorXd mu1 = Eigen::VectorXd::Random(d), mu2 = Eigen::VectorXd::Random(d);
    const Eigen::MatrixXd q = Eigen::HouseholderQR<Eigen::MatrixXd>(random_spd(d, gen)).householderQ();
    const double plain = metrics::frechet_distance(mu1, s1, mu2, s2);
    const double rotated = metrics::frechet_distance(q * mu1, q * s1 * q.transpose(), q * mu2, q * s2 * q.transpose());
    CHECK(rotated == doctest::Approx(plain).epsilon(1e-10));
  }
  SUBCASE("commuting covariances: Tr (S1 S2)^(1/2) = sum sqrt(a_i b_i) in a shared eigenbasis") {
    const std::int64_t d = 5;
    const Eigen::MatrixXd q = Eigen::HouseholderQR<Eigen::MatrixXd>(random_spd(d, gen)).householderQ();
    Eigen::VectorXd a(d), b(d);
    for (std::int64_t i = 0; i < d; ++i) a(i) = 0.5 + gen.uniform(), b(i) = 0.5 + gen.uniform();
    const Eigen::MatrixXd s1 = q * a.asDiagonal() * q.transpose(), s2 = q * b.asDiagonal() * q.transpose();
    CHECK(metrics::trace_sqrt_product(s1, s2) == doctest::Approx((a.cwiseProduct(b)).cwiseSqrt().sum()).epsilon(1e-12));
  }
}

TEST_CASE("frechet_distance and FeatureStatistics: mismatched dimensions and too few samples are refused") {
  const Eigen::VectorXd mu3 = Eigen::VectorXd::Zero(3), mu4 = Eigen::VectorXd::Zero(4);
  const Eigen::MatrixXd s3 = Eigen::MatrixXd::Identity(3, 3), s4 = Eigen::MatrixXd::Identity(4, 4);
  CHECK_THROWS_AS(metrics::frechet_distance(mu3, s3, mu4, s4), ShapeError);
  CHECK_THROWS_AS(metrics::frechet_distance(mu3, s4, mu3, s3), ShapeError);
  CHECK_THROWS_AS(metrics::frechet_distance(mu3, s3, mu3, s4), ShapeError);
  CHECK_THROWS_AS(metrics::frechet_distance(Eigen::VectorXd(), Eigen::MatrixXd(), Eigen::VectorXd(), Eigen::MatrixXd()),
                  ShapeError);
  metrics::FeatureStatistics a(3), b(4), one(3);
  const std::vector<float> rows(12, 1.0f);
  a.add(std::span<const float>(rows.data(), 12), 4);
  b.add(std::span<const float>(rows.data(), 12), 3);
  one.add(std::span<const float>(rows.data(), 3), 1);
  CHECK_THROWS_AS(metrics::frechet_distance(a, b), ShapeError);
  CHECK_THROWS_WITH_AS(metrics::frechet_distance(a, one), doctest::Contains("at least 2 samples"), ConfigError);
  CHECK_THROWS_AS(a.add(std::span<const float>(rows.data(), 10), 4), ShapeError);
  CHECK_THROWS_AS(a.add(Tensor<float>::zeros(Shape{2, 4})), ShapeError);
  CHECK_THROWS_AS(metrics::FeatureStatistics(0), ConfigError);
}

TEST_CASE("softmax_cross_entropy: loss and gradient equal torch.nn.functional.cross_entropy") {
  const auto f = fixture("cross_entropy");
  const auto logits = pd::io::to_tensor<double>(f, "logits");
  const auto labels = f.values<std::int64_t>("labels");
  const auto r = metrics::softmax_cross_entropy(logits, std::span<const std::int64_t>(labels));
  CHECK(r.loss == doctest::Approx(scalar(f, "loss")).epsilon(1e-12));
  CHECK(max_abs_diff(r.grad.to_host(), f.values<double>("grad")) < 1e-14);
  // The count of correct predictions, from the fixture's logits by hand.
  const auto z = f.values<double>("logits");
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    std::size_t best = 0;
    for (std::size_t j = 1; j < 7; ++j)
      if (z[i * 7 + j] > z[i * 7 + best]) best = j;
    correct += static_cast<std::int64_t>(best) == labels[i];
  }
  CHECK(r.correct == correct);
}

TEST_CASE("softmax_cross_entropy: central differences in double; bad labels are refused") {
  pd::Generator gen(8);
  std::vector<double> z(4 * 5);
  for (auto& v : z) v = 3.0 * gen.normal<double>();
  const std::vector<std::int64_t> labels{4, 0, 2, 2};
  const auto lab = std::span<const std::int64_t>(labels);
  auto loss_at = [&](const std::vector<double>& v) {
    return metrics::softmax_cross_entropy(Tensor<double>::from_host(Shape{4, 5}, v), lab).loss;
  };
  const auto grad = metrics::softmax_cross_entropy(Tensor<double>::from_host(Shape{4, 5}, z), lab).grad.to_host();
  const double h = 1e-6;
  for (std::size_t i = 0; i < z.size(); ++i) {
    auto plus = z, minus = z;
    plus[i] += h;
    minus[i] -= h;
    CHECK(grad[i] == doctest::Approx((loss_at(plus) - loss_at(minus)) / (2 * h)).epsilon(1e-6));
  }
  const auto logits = Tensor<double>::from_host(Shape{4, 5}, z);
  const std::vector<std::int64_t> out_of_range{4, 0, 5, 2}, short_labels{1, 2};
  CHECK_THROWS_WITH_AS(metrics::softmax_cross_entropy(logits, std::span<const std::int64_t>(out_of_range)),
                       doctest::Contains("sample 2"), ConfigError);
  CHECK_THROWS_AS(metrics::softmax_cross_entropy(logits, std::span<const std::int64_t>(short_labels)), ShapeError);
  CHECK_THROWS_AS(metrics::softmax_cross_entropy(Tensor<double>::zeros(Shape{4}), lab), ShapeError);
}

TEST_CASE("GlobalAveragePool: the spatial mean, and central differences for its gradient") {
  pd::Generator gen(5);
  std::vector<double> x(2 * 3 * 4 * 5);
  for (auto& v : x) v = gen.normal<double>();
  metrics::GlobalAveragePool<double, Cpu> pool;
  const auto y = pool.forward(Tensor<double>::from_host(Shape{2, 3, 4, 5}, x)).to_host();
  REQUIRE(y.size() == 6);
  for (std::size_t p = 0; p < 6; ++p) {
    double mean = 0.0;
    for (std::size_t k = 0; k < 20; ++k) mean += x[p * 20 + k] / 20.0;
    CHECK(y[p] == doctest::Approx(mean).epsilon(1e-14));
  }
  // Loss <w, pool(x)> with random w: the gradient by backward against central differences.
  std::vector<double> w(6);
  for (auto& v : w) v = gen.normal<double>();
  auto loss_at = [&](const std::vector<double>& v) {
    metrics::GlobalAveragePool<double, Cpu> p;
    const auto out = p.forward(Tensor<double>::from_host(Shape{2, 3, 4, 5}, v)).to_host();
    double s = 0.0;
    for (std::size_t i = 0; i < 6; ++i) s += w[i] * out[i];
    return s;
  };
  const auto dx = pool.backward(Tensor<double>::from_host(Shape{2, 3}, w)).to_host();
  const double h = 1e-5;
  for (std::size_t i = 0; i < x.size(); i += 7) {
    auto plus = x, minus = x;
    plus[i] += h;
    minus[i] -= h;
    CHECK(dx[i] == doctest::Approx((loss_at(plus) - loss_at(minus)) / (2 * h)).epsilon(1e-8));
  }
  CHECK_THROWS_AS(pool.forward(Tensor<double>::zeros(Shape{2, 3})), ShapeError);
  CHECK_THROWS_AS(pool.backward(Tensor<double>::zeros(Shape{2, 3})), ConfigError);
}

namespace {

metrics::ClassifierConfig tiny_config() {
  metrics::ClassifierConfig c;
  c.stages = {{4, 1}, {8, 2}};
  c.groups = 2;
  c.classes = 3;
  return c;
}

// Loads the fixture's torch parameters into `model` by the library's parameter names.
void load_fixture_parameters(metrics::FashionClassifier<double, Cpu>& model, const pd::io::SafetensorsFile& f) {
  model.visit_parameters(
      [&](const std::string& name, pd::nn::Parameter<double, Cpu>& p) {
        p.value = pd::io::to_tensor<double>(f, name, p.value.shape());
      },
      std::string());
}

}  // namespace

TEST_CASE("FashionClassifier: features, logits, loss and every gradient equal a PyTorch model's") {
  const auto f = fixture("classifier");
  metrics::FashionClassifier<double, Cpu> model(tiny_config());
  load_fixture_parameters(model, f);
  const auto x = pd::io::to_tensor<double>(f, "x");
  const auto labels = f.values<std::int64_t>("labels");
  CHECK(max_abs_diff(model.features(x).to_host(), f.values<double>("features")) < 1e-12);
  pd::nn::zero_grad(model);
  const auto logits = model.forward(x);
  CHECK(max_abs_diff(logits.to_host(), f.values<double>("logits")) < 1e-12);
  const auto r = metrics::softmax_cross_entropy(logits, std::span<const std::int64_t>(labels));
  CHECK(r.loss == doctest::Approx(scalar(f, "loss")).epsilon(1e-12));
  const auto dx = model.backward(r.grad);
  CHECK(max_abs_diff(dx.to_host(), f.values<double>("grad.x")) < 1e-12);
  int checked = 0;
  model.visit_parameters(
      [&](const std::string& name, pd::nn::Parameter<double, Cpu>& p) {
        INFO("parameter " << name);
        CHECK(max_abs_diff(p.grad.to_host(), f.values<double>("grad." + name)) < 1e-12);
        ++checked;
      },
      std::string());
  CHECK(checked == 10);
  CHECK(model.output_shape(x.shape()) == Shape{3, 3});
  CHECK(model.parameter_count() == (4 * 9 + 4) + 8 + (8 * 4 * 9 + 8) + 16 + (3 * 8 + 3));
  // conv 1: 2 * 4 * 9 * 80 outputs; conv 2 (stride 2: 4 x 5): 2 * 8 * 36 * 20; head 2 * 8 * 3.
  CHECK(model.flops(Shape{1, 1, 8, 10}) == 2 * 4 * 9 * 80 + 2 * 8 * 36 * 20 + 2 * 8 * 3);
}

TEST_CASE("FashionClassifier: central differences of the cross-entropy for input and parameters") {
  pd::Generator gen(13);
  metrics::FashionClassifier<double, Cpu> model(tiny_config());
  model.initialize(gen);
  std::vector<double> xv(2 * 1 * 6 * 6);
  for (auto& v : xv) v = gen.normal<double>();
  const std::vector<std::int64_t> labels{1, 2};
  auto loss = [&]() {
    return metrics::softmax_cross_entropy(model.forward(Tensor<double>::from_host(Shape{2, 1, 6, 6}, xv)),
                                          std::span<const std::int64_t>(labels));
  };
  pd::nn::zero_grad(model);
  const auto dx = model.backward(loss().grad).to_host();
  const double h = 1e-6;
  for (std::size_t i = 0; i < xv.size(); i += 5) {
    const double keep = xv[i];
    xv[i] = keep + h;
    const double up = loss().loss;
    xv[i] = keep - h;
    const double down = loss().loss;
    xv[i] = keep;
    CHECK(dx[i] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-5));
  }
  model.visit_parameters(
      [&](const std::string& name, pd::nn::Parameter<double, Cpu>& p) {
        const auto g = p.grad.to_host();
        auto values = p.value.to_host();
        for (std::size_t i = 0; i < values.size(); i += 3) {
          const double keep = values[i];
          values[i] = keep + h;
          p.value = Tensor<double>::from_host(p.value.shape(), values);
          const double up = loss().loss;
          values[i] = keep - h;
          p.value = Tensor<double>::from_host(p.value.shape(), values);
          const double down = loss().loss;
          values[i] = keep;
          p.value = Tensor<double>::from_host(p.value.shape(), values);
          INFO(name << "[" << i << "]");
          CHECK(g[i] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-5));
        }
      },
      std::string());
}

TEST_CASE("FashionClassifier: saved and loaded through safetensors; a different structure is refused") {
  const auto dir = std::filesystem::temp_directory_path() / "progdiff_metrics_test";
  std::filesystem::create_directories(dir);
  const auto path = dir / "classifier.safetensors";
  pd::Generator gen(2);
  metrics::FashionClassifier<float, Cpu> a(tiny_config()), b(tiny_config());
  a.initialize(gen);
  std::vector<float> xv(4 * 8 * 8);
  for (auto& v : xv) v = gen.normal();
  const auto x = Tensor<float>::from_host(Shape{4, 1, 8, 8}, xv);
  metrics::save_classifier(path, a, 37, 50, 9);
  CHECK(metrics::load_classifier(path, b) == doctest::Approx(37.0 / 50.0));
  CHECK(a.forward(x).to_host() == b.forward(x).to_host());
  metrics::ClassifierConfig wider = tiny_config();
  wider.stages[1].channels = 10;
  metrics::FashionClassifier<float, Cpu> c(wider);
  CHECK_THROWS_WITH_AS(metrics::load_classifier(path, c), doctest::Contains("widths"), ConfigError);
  // load_or_train_classifier reads the cache of the default structure only.
  CHECK_THROWS_AS(metrics::load_or_train_classifier(path), ConfigError);
  std::filesystem::remove_all(dir);
  using Classifier = metrics::FashionClassifier<float, Cpu>;
  CHECK_THROWS_AS(Classifier(metrics::ClassifierConfig{1, {{12, 1}}, 8, 10}), ConfigError);
}

namespace {

// A denoiser predicting x0 as its noised input unchanged: with x_t = sqrt(a) x0 + sqrt(1 - a) eps,
// the expected per-sample error is (sqrt(a) - 1)^2 mean(x0^2) + (1 - a).
struct IdentityDenoiser {
  int calls = 0;
  Tensor<float> predict(const Tensor<float>& x, std::span<const std::int64_t>) {
    ++calls;
    return x.clone();
  }
  pd::schedule::PredictionType prediction_type() const { return pd::schedule::PredictionType::Sample; }
};

}  // namespace

TEST_CASE("denoising_loss_per_group: the expected error of a known denoiser; batch size does not matter") {
  // 40 images of 1 x 16 x 16 with values in [-1, 1].
  pd::data::ImageDataset ds;
  ds.count = 40, ds.channels = 1, ds.height = 16, ds.width = 16;
  pd::Generator gen(4);
  for (std::int64_t i = 0; i < ds.count * 256; ++i) ds.pixels.push_back(static_cast<float>(gen.uniform(-1.0, 1.0)));
  ds.labels.assign(40, 0);
  double mean_square = 0.0;
  for (float v : ds.pixels) mean_square += static_cast<double>(v) * v / static_cast<double>(ds.pixels.size());

  const pd::schedule::Linear<1000> schedule;
  // Groups of one timestep fix alpha-bar exactly; a wide middle group as well.
  pd::group::Partition partition;
  partition.starts = {0, 1, 500, 501, 999, 1000};
  IdentityDenoiser model;
  metrics::GroupLossConfig config;
  config.samples_per_group = 40;
  config.batch_size = 16;
  const auto losses = metrics::denoising_loss_per_group<float, Cpu>(model, schedule, partition, ds, config);
  REQUIRE(losses.size() == 5);
  CHECK(model.calls == 5 * 3);
  for (std::size_t g : {0u, 2u, 4u}) {
    const auto& r = losses[g];
    const double a = schedule.alpha_bar(r.first_timestep);
    const double want = std::pow(std::sqrt(a) - 1.0, 2) * mean_square + (1.0 - a);
    // The noise part averages 40 * 256 squared normals: relative spread sqrt(2 / 10240) = 1.4%.
    INFO("group " << g << " at t = " << r.first_timestep);
    CHECK(r.samples == 40);
    CHECK(r.end_timestep == r.first_timestep + 1);
    CHECK(r.mse == doctest::Approx(want).epsilon(0.06));
    CHECK(r.weighted_loss == doctest::Approx(r.mse).epsilon(1e-12));  // no weighting: w = 1
  }
  // The wide group lies between its neighbours' errors.
  CHECK(losses[1].mse > losses[0].mse);
  CHECK(losses[1].mse < losses[4].mse);

  config.batch_size = 7;
  const auto again = metrics::denoising_loss_per_group<float, Cpu>(model, schedule, partition, ds, config);
  for (std::size_t g = 0; g < losses.size(); ++g) CHECK(again[g].mse == doctest::Approx(losses[g].mse).epsilon(1e-6));
  config.seed = 1;
  const auto other = metrics::denoising_loss_per_group<float, Cpu>(model, schedule, partition, ds, config);
  CHECK(other[1].mse != losses[1].mse);

  auto evaluate = [&](const pd::group::Partition& p) {
    return metrics::denoising_loss_per_group<float, Cpu>(model, schedule, p, ds, config);
  };
  config.samples_per_group = 41;
  CHECK_THROWS_AS(evaluate(partition), ConfigError);
  pd::group::Partition short_partition;
  short_partition.starts = {0, 10, 900};
  config.samples_per_group = 4;
  CHECK_THROWS_AS(evaluate(short_partition), ConfigError);
}

TEST_CASE("FashionClassifier: a short training run on Fashion-MNIST well above chance; Frechet distances order" *
          test_data::fashion_mnist_required()) {
  const std::filesystem::path dir = pd::data::kFashionMnistDirectory;
  // Small enough for the sanitized build (examples/03_classifier trains the full run).
  const auto train = pd::data::load_fashion_mnist(pd::data::Split::Train, dir, 4000);
  const auto test = pd::data::load_fashion_mnist(pd::data::Split::Test, dir, 1000);
  metrics::FashionClassifier<float, Cpu> model;
  metrics::ClassifierTrainingConfig config;
  config.epochs = 1;
  config.batch_size = 64;
  config.max_steps = 60;
  config.warmup_steps = 10;
  const auto report = metrics::train_classifier(model, train, &test, config);
  MESSAGE("60 steps of batch 64: test accuracy " << report.test_accuracy << " on 1000 images, " << report.seconds
                                                 << " s");
  CHECK(report.steps == 60);
  CHECK(report.test_accuracy > 0.5);  // chance is 0.1
  CHECK(report.test_accuracy == doctest::Approx(metrics::classifier_accuracy(model, test)).epsilon(1e-12));
  // Real against real (two halves of the test subset) sits below real against noise images.
  const auto half1 = metrics::classifier_feature_statistics(model, test, 0, 500);
  const auto half2 = metrics::classifier_feature_statistics(model, test, 500, 1000);
  Tensor<float> noise(Shape{500, 1, 32, 32});
  Cpu::normal<float>(noise.size(), 3, 0, 0, noise.data());
  const double floor = metrics::frechet_distance(half1, half2);
  const double to_noise = metrics::frechet_distance(half1, metrics::classifier_feature_statistics(model, noise));
  MESSAGE("Frechet distance, 500 vs 500: halves " << floor << ", to N(0, 1) images " << to_noise);
  CHECK(floor >= 0.0);
  CHECK(to_noise > 5.0 * floor);
}

}  // namespace progdiff_tests_metrics

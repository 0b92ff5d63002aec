// Timestep grouping on a cosine schedule: every grouper's boundaries (t1, t2 for three
// intervals), per-group FLOPs budgets of eq. 8, and a PNG plot of SNR, budget and groups over t.
// The optimal-denoiser groupers run on a Fashion-MNIST subsample (Debian package
// dataset-fashion-mnist), or on a synthetic set when it is not installed.
// The program checks its own results: every partition covers the grid once, and the batched
// optimal denoiser agrees with a naive float64 loop over eq. 4. Exit status 1 on a failure.
//
// usage: progdiff_example_01_grouping [plot.png] [images]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/data/idx.hpp"
#include "progdiff/difficulty/difficulty.hpp"
#include "progdiff/group/group.hpp"
#include "progdiff/io/png.hpp"
#include "progdiff/schedule/schedule.hpp"

namespace pd = progdiff;
using Cpu = pd::backend::Cpu;
using Schedule = pd::schedule::Cosine<1000>;

namespace {

constexpr const char* kFashionMnist = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

/// Images scaled to [-1, 1], [n, 784]; synthetic blobs when the data set is absent.
pd::Tensor<float, Cpu> load_images(std::int64_t n, bool& real) {
  std::vector<float> v;
  real = std::filesystem::exists(kFashionMnist);
  if (real) {
    const auto idx = pd::data::read_idx(kFashionMnist, n);
    const std::int64_t d = idx.dims[1] * idx.dims[2];
    n = idx.dims[0];
    v.resize(static_cast<std::size_t>(n * d));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = idx.values[i] / 127.5f - 1.0f;
    return pd::Tensor<float, Cpu>::from_host(pd::Shape{n, d}, v);
  }
  pd::Generator gen(0);
  const std::int64_t d = 784;
  v.resize(static_cast<std::size_t>(n * d));
  for (std::int64_t i = 0; i < n; ++i) {
    const double cx = 8 + 12 * gen.uniform(), cy = 8 + 12 * gen.uniform(), r = 3 + 6 * gen.uniform();
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) v[i * d + y * 28 + x] = std::hypot(x - cx, y - cy) < r ? 0.8f : -1.0f;
  }
  return pd::Tensor<float, Cpu>::from_host(pd::Shape{n, d}, v);
}

/// eq. 4 for one row by a direct float64 loop: the naive reference of the batched denoiser.
std::vector<double> naive_denoiser(const std::vector<float>& y, std::int64_t n, std::int64_t d, const float* x,
                                   double s, double sigma) {
  std::vector<double> logit(n);
  double top = -1e300, z = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    double dist = 0;
    for (std::int64_t j = 0; j < d; ++j) dist += std::pow(x[j] - s * y[i * d + j], 2);
    top = std::max(top, logit[i] = -dist / (2 * s * s * sigma * sigma));
  }
  for (double l : logit) z += std::exp(l - top);
  std::vector<double> out(d, 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) out[j] += std::exp(logit[i] - top) / z * y[i * d + j];
  for (std::int64_t j = 0; j < d; ++j) out[j] = (x[j] - s * out[j]) / (s * sigma);
  return out;
}

struct Row {
  std::string name;
  pd::group::Partition partition;
};

}  // namespace

int main(int argc, char** argv) {
  const std::string png_path = argc > 1 ? argv[1] : "grouping.png";
  const std::int64_t images = argc > 2 ? std::stoll(argv[2]) : 4000;
  const double full_flops = 8.14e9;  // IDDPM's CIFAR-10 U-Net, Step-Adaptive sec. 5
  const Schedule schedule;
  const pd::difficulty::SnrFlops budget{0.5};
  const auto fraction = budget.fractions(schedule);
  bool ok = true;

  const auto start = std::chrono::steady_clock::now();
  bool real = false;
  const auto data = load_images(images, real);
  const pd::group::OptimalDenoiser<Cpu> denoiser(data);
  std::printf("schedule: IDDPM cosine, T = %lld; data: %lld %s images of %lld pixels\n",
              static_cast<long long>(schedule.size()), static_cast<long long>(data.dim(0)),
              real ? "Fashion-MNIST" : "synthetic", static_cast<long long>(data.dim(1)));

  // the batched denoiser against the naive loop on a few noisy points
  {
    const auto y = data.to_host();
    const std::int64_t d = data.dim(1), n = data.dim(0);
    pd::Generator gen(9);
    std::vector<float> x(3 * d);
    for (auto& v : x) v = gen.normal<float>();
    const std::vector<double> scale{schedule.scale(100), schedule.scale(500), schedule.scale(900)},
        sigma{schedule.sigma(100), schedule.sigma(500), schedule.sigma(900)};
    const auto got = denoiser(pd::Tensor<float, Cpu>::from_host(pd::Shape{3, d}, x), scale, sigma).to_host();
    double worst = 0;
    for (int r = 0; r < 3; ++r) {
      const auto want = naive_denoiser(y, n, d, x.data() + r * d, scale[r], sigma[r]);
      for (std::int64_t j = 0; j < d; ++j) worst = std::max(worst, std::abs(got[r * d + j] - want[j]));
    }
    std::printf("optimal denoiser vs naive float64 loop: max |difference| = %.2e\n", worst);
    ok &= worst < 1e-3;
  }

  std::vector<Row> rows;
  rows.push_back({"FLOPs interval (eqs. 9-10)", pd::group::FlopsInterval<3>{budget}.group(schedule)});
  rows.push_back({"uniform timesteps", pd::group::UniformSplit{3}.group(schedule)});
  rows.push_back({"equal log-SNR", pd::group::LogSnrSplit{3}.group(schedule)});
  rows.push_back({"min SNR spread (DP)", pd::group::SnrSpreadSplit{3}.group(schedule)});
  const pd::group::OptimalDenoiserClustering<Cpu> algorithm1{&denoiser, 512, 0.9, 0.01, 1};
  const auto clusters = algorithm1.cluster(schedule);
  rows.push_back({"optimal denoiser (Alg. 1)", algorithm1.group(schedule)});
  rows.push_back(
      {"optimal denoiser (DP)", pd::group::SimilarityDpSplit<Cpu>{&denoiser, 3, 40, 16, 0.01, 1}.group(schedule)});
  std::printf("Algorithm 1: K = 512, alpha = 0.9, eta = 0.01 -> t1 = %.3f, t2 = %.3f\n", clusters.t1, clusters.t2);

  std::printf("\n%-28s %-24s %s\n", "grouper", "boundaries t", "per-group FLOPs budget (max over the group, GFLOPs)");
  for (const auto& row : rows) {
    try {
      row.partition.validate(schedule.size());
    } catch (const pd::Error& e) {
      std::printf("FAILED: %s: %s\n", row.name.c_str(), e.what());
      ok = false;
      continue;
    }
    std::string bounds, budgets;
    for (double t : pd::group::boundary_times(row.partition, schedule)) bounds += std::to_string(t).substr(0, 5) + " ";
    for (std::int64_t g = 0; g < row.partition.groups(); ++g) {
      double top = 0;
      for (auto i = row.partition.begin(g); i < row.partition.end(g); ++i) top = std::max(top, fraction[i]);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f ", top * full_flops * 1e-9);
      budgets += buf;
    }
    std::printf("%-28s %-24s %s\n", row.name.c_str(), bounds.c_str(), budgets.c_str());
  }

  // plot: SNR (dB, blue) and FLOPs budget (red) over t, one band per grouper below
  const int W = 960, H = 600, left = 40, right = W - 20, top = 20, plot_bottom = 330;
  pd::io::Image img(W, H);
  img.line(left, plot_bottom, right, plot_bottom, {0, 0, 0});
  img.line(left, top, left, plot_bottom, {0, 0, 0});
  auto px = [&](double t) { return left + static_cast<int>(std::lround(t * (right - left))); };
  double lo = 1e300, hi = -1e300;
  for (std::int64_t i = 0; i < schedule.size(); ++i)
    lo = std::min(lo, schedule.snr_db(i)), hi = std::max(hi, schedule.snr_db(i));
  auto py = [&](double unit) { return plot_bottom - static_cast<int>(std::lround(unit * (plot_bottom - top))); };
  for (std::int64_t i = 1; i < schedule.size(); ++i) {
    img.line(px(schedule.time(i - 1)), py((schedule.snr_db(i - 1) - lo) / (hi - lo)), px(schedule.time(i)),
             py((schedule.snr_db(i) - lo) / (hi - lo)), {30, 80, 200}, 2);
    img.line(px(schedule.time(i - 1)), py(fraction[i - 1]), px(schedule.time(i)), py(fraction[i]), {210, 40, 40}, 2);
  }
  const pd::io::Rgb shades[2][2] = {{{200, 200, 200}, {120, 120, 120}}, {{170, 210, 170}, {60, 140, 60}}};
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const int y0 = plot_bottom + 20 + static_cast<int>(r) * 40, y1 = y0 + 28;
    const auto& p = rows[r].partition;
    for (std::int64_t g = 0; g < p.groups(); ++g) {
      const double t0 = g == 0 ? 0.0 : schedule.time(p.begin(g)), t1 = schedule.time(p.end(g) - 1);
      img.fill_rect(px(t0), y0, px(t1), y1, shades[r >= 4][g % 2]);
    }
    for (double t : pd::group::boundary_times(p, schedule)) {
      img.line(px(t), top, px(t), plot_bottom, shades[r >= 4][1]);
    }
  }
  pd::io::write_png(png_path, img);
  std::printf("\nplot written to %s (%.1f s)\n", png_path.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  std::printf("%s\n", ok ? "all checks passed" : "CHECKS FAILED");
  return ok ? 0 : 1;
}

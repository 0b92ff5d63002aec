#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/difficulty/difficulty.hpp"
#include "progdiff/group/group.hpp"
#include "progdiff/schedule/schedule.hpp"

namespace grp = progdiff::group;
namespace dif = progdiff::difficulty;
namespace sch = progdiff::schedule;
using progdiff::Generator;
using progdiff::Shape;
using Cpu = progdiff::backend::Cpu;

namespace {

// sigma = 10^(i - 1): SNR = 20, 0, -20 dB; log-SNR falls linearly in i (n points)
struct GeometricSigma {
  std::int64_t n = 3;
  std::int64_t size() const { return n; }
  double time(std::int64_t i) const { return (i + 1.0) / n; }
  double sigma(std::int64_t i) const { return std::pow(10.0, static_cast<double>(i) - 1.0); }
  double scale(std::int64_t) const { return 1.0; }
  double alpha_bar(std::int64_t i) const { return 1 / (1 + sigma(i) * sigma(i)); }
};

// A user-defined grouper: the first timestep alone, the rest together.
struct FirstStepAlone {
  template <class S>
  grp::Partition group(const S& s) const {
    return grp::Partition{{0, 1, s.size()}, {}};
  }
};

struct Wiggly {  // a non-monotone budget
  template <class S>
  std::vector<double> fractions(const S& s) const {
    std::vector<double> f;
    for (std::int64_t i = 0; i < s.size(); ++i) f.push_back(0.5 + 0.4 * std::abs(std::sin(0.3 * i)));
    return f;
  }
};

void check_invariants(const grp::Partition& p, std::int64_t size) {
  REQUIRE_NOTHROW(p.validate(size));
  std::int64_t covered = 0;
  for (std::int64_t g = 0; g < p.groups(); ++g) covered += p.end(g) - p.begin(g);
  CHECK(covered == size);
  for (std::int64_t i = 0; i < size; i += std::max<std::int64_t>(1, size / 17)) {
    const auto g = p.group_of(i);
    CHECK(p.begin(g) <= i);
    CHECK(i < p.end(g));
  }
}

// every partition of n points into k contiguous groups: the starts vectors
void all_partitions(std::int64_t n, std::int64_t k, std::vector<std::int64_t>& cur,
                    const std::function<void(const std::vector<std::int64_t>&)>& visit) {
  if (static_cast<std::int64_t>(cur.size()) == k) {
    auto s = cur;
    s.push_back(n);
    visit(s);
    return;
  }
  for (std::int64_t b = cur.back() + 1; b <= n - (k - static_cast<std::int64_t>(cur.size())); ++b) {
    cur.push_back(b);
    all_partitions(n, k, cur, visit);
    cur.pop_back();
  }
}

}  // namespace

static_assert(grp::check_grouper<FirstStepAlone, sch::Linear<10>>());
static_assert(grp::Grouper<grp::FlopsInterval<10>, sch::Cosine<4000>>);
static_assert(grp::Grouper<grp::OptimalDenoiserClustering<Cpu>, sch::EDM>);
static_assert(!grp::Grouper<int, sch::Cosine<4000>>);

// SNR = 20, 18, -20 dB
struct UnevenSnr {
  std::int64_t size() const { return 3; }
  double time(std::int64_t i) const { return (i + 1) / 3.0; }
  double sigma(std::int64_t i) const { return std::pow(10.0, -(i == 0 ? 20.0 : (i == 1 ? 18.0 : -20.0)) / 20.0); }
  double scale(std::int64_t) const { return 1.0; }
  double alpha_bar(std::int64_t i) const { return 1 / (1 + sigma(i) * sigma(i)); }
};

TEST_CASE("Partition routes fractional timesteps by their nearest grid index") {
  const progdiff::group::Partition p{{0, 3, 7, 10}, {}};
  // nearest indices 0 (clamped), 2, 3, 7 (half rounds away from zero), 9 (clamped), 9
  const std::vector<double> t{-0.4, 2.4, 2.6, 6.5, 9.7, 12.0};
  CHECK(p.groups_of_nearest(t) == std::vector<std::int64_t>{0, 0, 1, 2, 2, 2});
}

TEST_CASE("FlopsInterval: eqs. 9-10 on a hand-computed case") {
  // budgets 0.5, 0.75, 1 (eq. 8, k = 0.5); N = 2: w(0) = 0.75, w(1) = 1
  const auto p = grp::make_partition(grp::FlopsIntervalGrouper<>{2, dif::SnrFlops{0.5}}, GeometricSigma{});
  CHECK(p.starts == std::vector<std::int64_t>{0, 2, 3});
  CHECK(p.budgets == std::vector<double>{0.75, 1.0});
  // SNR 20, 18, -20 dB: -SNR -20, -18, 20 -> Ratio 0, 0.05, 1 -> budgets 0.5, 0.525, 1;
  // N = 3: w = 2/3, 5/6, 1, so (2/3, 5/6] holds no timestep and gives no group
  const auto q = grp::make_partition(grp::FlopsIntervalGrouper<>{3, dif::SnrFlops{0.5}}, UnevenSnr{});
  CHECK(q.starts == std::vector<std::int64_t>{0, 2, 3});
  REQUIRE(q.budgets.size() == 2);
  CHECK(q.budgets[0] == doctest::Approx(2.0 / 3));
  CHECK(q.budgets[1] == doctest::Approx(1.0));
}

TEST_CASE("FlopsInterval: every N from 1 to T covers all timesteps within budget") {
  const sch::Cosine<200> s;
  const auto f = dif::SnrFlops{0.5}.fractions(s);
  for (std::int64_t n = 1; n <= s.size(); ++n) {
    CAPTURE(n);
    const auto p = grp::make_partition(grp::FlopsIntervalGrouper<>{n, dif::SnrFlops{0.5}}, s);
    check_invariants(p, s.size());
    REQUIRE(p.groups() <= n);
    REQUIRE(static_cast<std::int64_t>(p.budgets.size()) == p.groups());
    for (std::int64_t g = 0; g < p.groups(); ++g) {
      if (g > 0) REQUIRE(p.budgets[g] > p.budgets[g - 1]);  // budgets monotone in difficulty
      for (std::int64_t i = p.begin(g); i < p.end(g); ++i) {
        REQUIRE(f[i] <= p.budgets[g] * (1 + 1e-12));
        if (g > 0) REQUIRE(f[i] > p.budgets[g] - (1 - 0.5) / n * (1 + 1e-9));  // above v(i)
      }
    }
  }
  CHECK(grp::make_partition(grp::FlopsInterval<1>{}, s).groups() == 1);
  CHECK(grp::make_partition(grp::FlopsInterval<10>{}, s).groups() <= 10);
  CHECK(grp::make_partition(grp::FlopsInterval<10>{}, sch::Linear<1000>{}).groups() == 10);
  CHECK_THROWS_AS(grp::FlopsIntervalGrouper<>{0}.group(s), progdiff::ConfigError);
  CHECK_THROWS_AS(grp::FlopsIntervalGrouper<>{201}.group(s), progdiff::ConfigError);
}

TEST_CASE("FlopsInterval with the Table 3 curves and a non-monotone curve") {
  const sch::Linear<100> s;
  const auto up = grp::make_partition(grp::FlopsIntervalGrouper<dif::UniIncreasingFlops>{5, {0.5}}, s);
  CHECK(up.starts == std::vector<std::int64_t>{0, 20, 40, 60, 80, 100});
  const auto down = grp::make_partition(grp::FlopsIntervalGrouper<dif::UniDecreasingFlops>{5, {0.5}}, s);
  CHECK(down.starts == std::vector<std::int64_t>{0, 20, 40, 60, 80, 100});
  CHECK(down.budgets.front() == doctest::Approx(1.0));  // the first timesteps get the most
  CHECK(down.budgets.back() == doctest::Approx(0.6));
  CHECK(grp::make_partition(grp::FlopsIntervalGrouper<dif::ConstantFlops>{5, {0.7}}, s).groups() == 1);
  CHECK_THROWS_WITH_AS(grp::FlopsIntervalGrouper<Wiggly>{3}.group(s), doctest::Contains("monotone"),
                       progdiff::ConfigError);
}

TEST_CASE("UniformSplit and LogSnrSplit") {
  CHECK(grp::make_partition(grp::UniformSplit{3}, sch::Linear<10>{}).starts == std::vector<std::int64_t>{0, 3, 6, 10});
  CHECK(grp::make_partition(grp::UniformSplit{1}, sch::Linear<10>{}).starts == std::vector<std::int64_t>{0, 10});
  // log-SNR falls linearly: equal log-SNR intervals are equal index runs
  const GeometricSigma g{9};  // lambda_i = 2 ln 10 (1 - i), 9 points, range 8 steps
  CHECK(grp::make_partition(grp::LogSnrSplit{4}, g).starts == std::vector<std::int64_t>{0, 3, 5, 7, 9});
  CHECK(grp::make_partition(grp::LogSnrSplit{2}, g).starts == std::vector<std::int64_t>{0, 5, 9});
  // the cosine schedule: each group's log-SNR span is at most 1/N of the whole
  const sch::Cosine<1000> c;
  const auto p = grp::make_partition(grp::LogSnrSplit{5}, c);
  check_invariants(p, c.size());
  const double span = (c.log_snr(0) - c.log_snr(999)) / 5;
  for (std::int64_t j = 0; j < p.groups(); ++j)
    CHECK(c.log_snr(p.begin(j)) - c.log_snr(p.end(j) - 1) <= span * (1 + 1e-9));
}

TEST_CASE("SnrSpreadSplit is the exact optimum (brute force over all contiguous partitions)") {
  const sch::Cosine<12> s;
  std::vector<double> x;
  for (std::int64_t i = 0; i < s.size(); ++i) x.push_back(s.snr_db(i));
  auto spread = [&](const std::vector<std::int64_t>& st) {  // direct two-pass variance sums
    double total = 0;
    for (std::size_t g = 0; g + 1 < st.size(); ++g) {
      double m = 0;
      for (auto i = st[g]; i < st[g + 1]; ++i) m += x[i];
      m /= static_cast<double>(st[g + 1] - st[g]);
      for (auto i = st[g]; i < st[g + 1]; ++i) total += (x[i] - m) * (x[i] - m);
    }
    return total;
  };
  for (std::int64_t k = 1; k <= 5; ++k) {
    double best = std::numeric_limits<double>::infinity();
    std::vector<std::int64_t> cur{0};
    all_partitions(s.size(), k, cur, [&](const auto& st) { best = std::min(best, spread(st)); });
    const auto p = grp::make_partition(grp::SnrSpreadSplit{k}, s);
    CHECK(p.groups() == k);
    CHECK(spread(p.starts) == doctest::Approx(best).epsilon(1e-9));
  }
}

TEST_CASE("similarity DP is the exact optimum of the mean within-interval similarity") {
  Generator gen(7);
  const std::int64_t g = 9;
  std::vector<double> sim(g * g, 1.0);
  for (std::int64_t a = 0; a < g; ++a)
    for (std::int64_t b = a + 1; b < g; ++b) sim[a * g + b] = sim[b * g + a] = gen.uniform();
  auto objective = [&](const std::vector<std::int64_t>& st) {
    double j = 0;
    for (std::size_t q = 0; q + 1 < st.size(); ++q) {
      double block = 0;
      for (auto a = st[q]; a < st[q + 1]; ++a)
        for (auto b = st[q]; b < st[q + 1]; ++b) block += sim[a * g + b];
      j += block / static_cast<double>(st[q + 1] - st[q]);
    }
    return j / g;
  };
  for (std::int64_t k = 1; k <= 4; ++k) {
    double best = -1;
    std::vector<std::int64_t> cur{0};
    all_partitions(g, k, cur, [&](const auto& st) { best = std::max(best, objective(st)); });
    CHECK(objective(grp::max_similarity_partition(sim, g, k).starts) == doctest::Approx(best).epsilon(1e-12));
  }
}

TEST_CASE("Algorithm 1 lines 8-9 on hand-made samples") {
  // (t, S0, S1): prefix means of S0 = 1, 0.95, 0.8, 0.65, ...; suffix means of S1 from the end
  std::vector<grp::ClusteringSample> smp = {
      {0.5, 0, 0.4, 0.9}, {0.1, 0, 1.0, 0.2}, {0.2, 0, 0.9, 0.3}, {0.9, 0, 0.0, 1.0}, {0.7, 0, 0.2, 0.95}};
  // sorted t: 0.1 0.2 0.5 0.7 0.9; S0 prefix means 1, .95, .7667, .625, .5; S1 suffix means from 0.9:
  // 1, .975, .95, .7875, .67
  const auto r = grp::choose_t1_t2(smp, 0.9);
  CHECK(r.t1 == 0.2);
  CHECK(r.t2 == 0.5);
  const auto none = grp::choose_t1_t2(smp, 1.01);
  CHECK(none.t1 == -std::numeric_limits<double>::infinity());
  CHECK(none.t2 == std::numeric_limits<double>::infinity());
}

namespace {

progdiff::Tensor<float, Cpu> gaussian_points(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v(static_cast<std::size_t>(n * d));
  for (auto& x : v) x = gen.normal<float>();
  return progdiff::Tensor<float, Cpu>::from_host(Shape{n, d}, v);
}

// eq. 4 by a direct float64 loop
std::vector<double> direct_eps(const std::vector<float>& y, std::int64_t n, std::int64_t d,
                               const std::vector<double>& x, double s, double sigma) {
  std::vector<double> logit(n);
  double top = -1e300;
  for (std::int64_t i = 0; i < n; ++i) {
    double dist = 0;
    for (std::int64_t j = 0; j < d; ++j) dist += (x[j] - s * y[i * d + j]) * (x[j] - s * y[i * d + j]);
    logit[i] = -dist / (2 * s * s * sigma * sigma);
    top = std::max(top, logit[i]);
  }
  double z = 0;
  for (auto l : logit) z += std::exp(l - top);
  std::vector<double> out(d);
  for (std::int64_t j = 0; j < d; ++j) {
    double m = 0;
    for (std::int64_t i = 0; i < n; ++i) m += std::exp(logit[i] - top) / z * y[i * d + j];
    out[j] = (x[j] - s * m) / (s * sigma);
  }
  return out;
}

}  // namespace

TEST_CASE("OptimalDenoiser matches a direct float64 evaluation of eq. 4") {
  const std::int64_t n = 300, d = 17, m = 5;
  const auto data = gaussian_points(n, d, 1);
  const auto y = data.to_host();
  const grp::OptimalDenoiser<Cpu> den(data, 2);  // block of 2 rows exercises the blocking
  const grp::OptimalDenoiser<Cpu, double> den64(
      progdiff::Tensor<double, Cpu>::from_host(Shape{n, d}, std::vector<double>(y.begin(), y.end())));
  Generator gen(2);
  std::vector<float> x(m * d);
  for (auto& v : x) v = gen.normal<float>() * 2;
  const std::vector<double> scale{1.0, 0.9, 0.5, 0.2, 1.0}, sigma{0.3, 0.8, 1.5, 4.0, 20.0};
  const auto got = den(progdiff::Tensor<float, Cpu>::from_host(Shape{m, d}, x), scale, sigma).to_host();
  const auto got64 =
      den64(progdiff::Tensor<double, Cpu>::from_host(Shape{m, d}, std::vector<double>(x.begin(), x.end())), scale,
            sigma)
          .to_host();
  for (std::int64_t r = 0; r < m; ++r) {
    const auto want =
        direct_eps(y, n, d, std::vector<double>(x.begin() + r * d, x.begin() + (r + 1) * d), scale[r], sigma[r]);
    for (std::int64_t j = 0; j < d; ++j) {
      CHECK(got[r * d + j] == doctest::Approx(want[j]).epsilon(1e-4).scale(1.0));
      CHECK(got64[r * d + j] == doctest::Approx(want[j]).epsilon(1e-10).scale(1.0));
    }
  }
  CHECK_THROWS_AS(den(progdiff::Tensor<float, Cpu>::zeros(Shape{2, 3}), 1.0, 1.0), progdiff::ShapeError);
  CHECK_THROWS_AS(den(progdiff::Tensor<float, Cpu>::zeros(Shape{1, d}), 1.0, 0.0), progdiff::ConfigError);
}

TEST_CASE("OptimalDenoiser limits of sec. 4.3: t -> 0 gives eps, t -> 1 gives x") {
  const std::int64_t n = 200, d = 32;
  const auto data = gaussian_points(n, d, 3);
  const auto y = data.to_host();
  const grp::OptimalDenoiser<Cpu> den(data);
  Generator gen(4);
  std::vector<float> eps(d);
  for (auto& v : eps) v = gen.normal<float>();
  const std::int64_t k = 17;
  // t -> 0 (VP, sigma = 0.02): x = s (y_k + sigma eps) lies nearest y_k, and eps* returns eps
  const sch::VP vp(1001);
  const std::int64_t near = 1;
  const double s0 = vp.scale(near), sg0 = vp.sigma(near);
  std::vector<float> x(d);
  for (std::int64_t j = 0; j < d; ++j) x[j] = static_cast<float>(s0 * (y[k * d + j] + sg0 * eps[j]));
  auto e0 = den(progdiff::Tensor<float, Cpu>::from_host(Shape{1, d}, x), s0, sg0).to_host();
  for (std::int64_t j = 0; j < d; ++j) CHECK(e0[j] == doctest::Approx(eps[j]).epsilon(2e-2).scale(1.0));
  // t -> 1 (VP at t = 1: s = exp(-5.025), s sigma = sqrt(1 - s^2)): eps* -> x
  const double s1 = vp.scale(1000), sg1 = vp.sigma(1000);
  for (std::int64_t j = 0; j < d; ++j) x[j] = gen.normal<float>();
  auto e1 = den(progdiff::Tensor<float, Cpu>::from_host(Shape{1, d}, x), s1, sg1).to_host();
  for (std::int64_t j = 0; j < d; ++j) CHECK(e1[j] == doctest::Approx(x[j]).epsilon(2e-2).scale(1.0));
}

TEST_CASE("optimal-denoiser groupers: valid, deterministic for a seed, sensible order") {
  const auto data = gaussian_points(64, 16, 5);
  const grp::OptimalDenoiser<Cpu> den(data);
  const sch::VP vp(200);
  grp::OptimalDenoiserClustering<Cpu> alg{&den, 256, 0.8, 0.1, 11};
  const auto r1 = alg.cluster(vp), r2 = alg.cluster(vp);
  CHECK(r1.t1 == r2.t1);
  CHECK(r1.t2 == r2.t2);
  CHECK(r1.samples.size() == 256);
  CHECK(r1.t1 < r1.t2);
  const auto p = grp::make_partition(alg, vp);
  check_invariants(p, vp.size());
  CHECK(p.groups() == 3);
  CHECK(grp::boundary_times(p, vp).front() > r1.t1);
  // next to t = 0 the denoiser agrees with eps*_0; mid-way it agrees with neither end (both ends
  // return eps itself, sec. 4.3, so similarity is not monotone in t)
  CHECK(r1.samples.front().s0 == doctest::Approx(1.0));
  double mid_s0 = 1, mid_s1 = 1;
  for (const auto& smp : r1.samples)
    if (smp.t > 0.3 && smp.t < 0.6) mid_s0 = std::min(mid_s0, smp.s0), mid_s1 = std::min(mid_s1, smp.s1);
  CHECK(mid_s0 < 0.5);
  CHECK(mid_s1 < 0.5);
  alg.seed = 12;
  const auto r3 = alg.cluster(vp);
  bool differs = false;
  for (std::size_t i = 0; i < r3.samples.size(); ++i) differs |= r3.samples[i].t != r1.samples[i].t;
  CHECK(differs);

  grp::SimilarityDpSplit<Cpu> dp{&den, 3, 24, 8, 0.1, 3};
  const auto q1 = grp::make_partition(dp, vp), q2 = grp::make_partition(dp, vp);
  check_invariants(q1, vp.size());
  CHECK(q1.starts == q2.starts);
  CHECK(q1.groups() == 3);
  const auto sim = dp.similarity(vp);
  CHECK(sim[0] == 1.0);
  CHECK(sim[1] >= sim[23]);  // neighbours agree more than the two ends
}

TEST_CASE("a user-defined grouper and boundary reports in t and sigma") {
  const sch::EDM edm(10);
  const auto p = grp::make_partition(FirstStepAlone{}, edm);
  CHECK(p.boundaries() == std::vector<std::int64_t>{1});
  CHECK(grp::boundary_times(p, edm) == std::vector<double>{edm.time(1)});
  CHECK(grp::boundary_sigmas(p, edm).front() == doctest::Approx(edm.sigma(1)));
  CHECK_THROWS_AS(grp::Partition({{0, 2, 2}, {}}).validate(2), progdiff::ConfigError);
}

// The example's plot and data readers (progdiff/io/png.hpp, progdiff/data/idx.hpp).
#include <zlib.h>

#include "progdiff/data/idx.hpp"
#include "progdiff/io/png.hpp"

namespace progdiff_tests_group {

TEST_CASE("PNG encoder: chunk layout, CRCs and the inflated raster, checked by the specification") {
  // The encoder is libpng's; this reads its output the way ISO/IEC 15948 defines it (chunks with
  // their CRC-32, the IDAT stream inflated by zlib, the five row filters undone here), so a wrong
  // raster or a malformed file fails independently of any PNG library.
  progdiff::io::Image img(3, 2);
  img.set(1, 0, {10, 20, 30});
  img.set(2, 1, {200, 100, 50});
  const auto png = progdiff::io::encode_png(img);
  REQUIRE(png.size() > 8 + 25 + 12 + 12);
  CHECK(std::vector<std::uint8_t>(png.begin(), png.begin() + 8) ==
        std::vector<std::uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
  auto u32 = [&](std::size_t o) {
    return (std::uint32_t(png[o]) << 24) | (png[o + 1] << 16) | (png[o + 2] << 8) | png[o + 3];
  };
  std::size_t o = 8;
  std::vector<std::uint8_t> idat;
  std::vector<std::string> types;
  while (o + 12 <= png.size()) {
    const std::uint32_t len = u32(o);
    REQUIRE(o + 12 + len <= png.size());
    types.emplace_back(png.begin() + o + 4, png.begin() + o + 8);
    CHECK(u32(o + 8 + len) == crc32(0L, png.data() + o + 4, len + 4));  // CRC over type and data
    if (types.back() == "IHDR")  // 3 x 2, 8 bits, RGB, deflate, filter method 0, no interlace
      CHECK((u32(o + 8) == 3 && u32(o + 12) == 2 && png[o + 16] == 8 && png[o + 17] == 2 && png[o + 20] == 0));
    if (types.back() == "IDAT") idat.insert(idat.end(), png.begin() + o + 8, png.begin() + o + 8 + len);
    o += 12 + len;
  }
  CHECK(o == png.size());
  REQUIRE(types.size() >= 3);
  CHECK(types.front() == "IHDR");
  CHECK(types.back() == "IEND");
  for (const auto& t : types)
    CHECK(((t[0] & 0x20) != 0 || t == "IHDR" || t == "IDAT" || t == "IEND"));  // no other critical chunk
  std::vector<std::uint8_t> raw(2 * (1 + 9));
  uLongf raw_len = raw.size();
  REQUIRE(uncompress(raw.data(), &raw_len, idat.data(), idat.size()) == Z_OK);
  REQUIRE(raw_len == 20);
  // Undo the row filters (None, Sub, Up, Average, Paeth; 3 bytes per pixel).
  std::vector<int> pixels(18);
  for (int y = 0; y < 2; ++y) {
    const int filter = raw[y * 10];
    REQUIRE((filter >= 0 && filter <= 4));
    for (int x = 0; x < 9; ++x) {
      const int a = x >= 3 ? pixels[y * 9 + x - 3] : 0, b = y ? pixels[(y - 1) * 9 + x] : 0,
                c = (y && x >= 3) ? pixels[(y - 1) * 9 + x - 3] : 0;
      const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
      const int paeth = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c);
      const int predictor = filter == 0 ? 0 : filter == 1 ? a : filter == 2 ? b : filter == 3 ? (a + b) / 2 : paeth;
      pixels[y * 9 + x] = (raw[y * 10 + 1 + x] + predictor) & 0xff;
    }
  }
  CHECK(pixels ==
        std::vector<int>{255, 255, 255, 10, 20, 30, 255, 255, 255, 255, 255, 255, 255, 255, 255, 200, 100, 50});
}

TEST_CASE("IDX reader: a valid array and malformed headers") {
  const std::vector<std::uint8_t> ok = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
  const auto a = progdiff::data::parse_idx(ok, "mem");
  CHECK(a.dims == std::vector<std::int64_t>{2, 3});
  CHECK(a.values[5] == 6);
  CHECK(progdiff::data::parse_idx(ok, "mem", 1).values.size() == 3);
  auto bad = ok;
  bad[2] = 0x0d;  // float elements
  CHECK_THROWS_WITH_AS(progdiff::data::parse_idx(bad, "mem"), doctest::Contains("offset 2"), progdiff::FormatError);
  bad = ok;
  bad.pop_back();  // one element short
  CHECK_THROWS_AS(progdiff::data::parse_idx(bad, "mem"), progdiff::FormatError);
  CHECK_THROWS_AS(progdiff::data::parse_idx({0, 0, 8}, "mem"), progdiff::FormatError);
  CHECK_THROWS_AS(progdiff::data::parse_idx({1, 0, 8, 1, 0, 0, 0, 0}, "mem"), progdiff::FormatError);
  CHECK_THROWS_AS(progdiff::data::read_idx("/nonexistent.idx"), progdiff::IoError);
}

}  // namespace progdiff_tests_group

#include <doctest/doctest.h>

#include <cmath>

#include "progdiff/difficulty/difficulty.hpp"
#include "progdiff/schedule/schedule.hpp"

namespace progdiff_tests_difficulty {

namespace dif = progdiff::difficulty;
namespace sch = progdiff::schedule;

namespace {

// sigma = 0.1, 1, 10: SNR = 20, 0, -20 dB (eq. 7)
struct ThreeLevels {
  std::int64_t size() const { return 3; }
  double time(std::int64_t i) const { return (i + 1) / 3.0; }
  double sigma(std::int64_t i) const { return std::pow(10.0, static_cast<double>(i) - 1.0); }
  double scale(std::int64_t) const { return 1.0; }
  double alpha_bar(std::int64_t i) const { return 1 / (1 + sigma(i) * sigma(i)); }
};

// A user-defined curve: budget grows with the square of t.
struct QuadraticFlops {
  template <class S>
  std::vector<double> fractions(const S& s) const {
    std::vector<double> f;
    for (std::int64_t i = 0; i < s.size(); ++i) f.push_back(0.25 + 0.75 * s.time(i) * s.time(i));
    return f;
  }
};

}  // namespace

static_assert(dif::check_difficulty_curve<QuadraticFlops, ThreeLevels>());
static_assert(dif::DifficultyCurve<dif::SnrFlops, sch::Cosine<1000>>);
static_assert(!dif::DifficultyCurve<int, sch::Cosine<1000>>);

TEST_CASE("SnrFlops follows eq. 8 on a hand-computed case") {
  // -SNR = -20, 0, 20 -> Ratio = 0, 1/2, 1 -> FLOPs = (k + (1 - k) Ratio) F
  const auto f = dif::SnrFlops{0.5}.fractions(ThreeLevels{});
  REQUIRE(f.size() == 3);
  CHECK(f[0] == doctest::Approx(0.5));
  CHECK(f[1] == doctest::Approx(0.75));
  CHECK(f[2] == doctest::Approx(1.0));
  const auto flops = dif::flops_budget(dif::SnrFlops{0.2}, ThreeLevels{}, 8.14e9);
  CHECK(flops[1] == doctest::Approx((0.2 + 0.8 * 0.5) * 8.14e9));
}

TEST_CASE("SnrFlops: harder (noisier) timesteps get more FLOPs, from k F to F") {
  const sch::Cosine<1000> s;
  const double k = 0.3;
  const auto f = dif::SnrFlops{k}.fractions(s);
  CHECK(f.front() == doctest::Approx(k));
  CHECK(f.back() == doctest::Approx(1.0));
  for (std::size_t i = 1; i < f.size(); ++i) REQUIRE(f[i] >= f[i - 1]);
  // eq. 8 is linear in SNR dB: the midpoint in -SNR gets the midpoint budget
  const double lo = -s.snr_db(0), hi = -s.snr_db(999), mid = -s.snr_db(500);
  CHECK(f[500] == doctest::Approx(k + (1 - k) * (mid - lo) / (hi - lo)).epsilon(1e-12));
}

TEST_CASE("Table 3 ablation curves: constant, uni-increasing, uni-decreasing") {
  const sch::Linear<101> s;
  const auto c = dif::ConstantFlops{0.8}.fractions(s);
  const auto up = dif::UniIncreasingFlops{0.5}.fractions(s);
  const auto down = dif::UniDecreasingFlops{0.5}.fractions(s);
  CHECK(c[0] == 0.8);
  CHECK(c[100] == 0.8);
  CHECK(up[0] == doctest::Approx(0.5));
  CHECK(up[50] == doctest::Approx(0.75));
  CHECK(up[100] == doctest::Approx(1.0));
  CHECK(down[0] == doctest::Approx(1.0));
  CHECK(down[100] == doctest::Approx(0.5));
  CHECK(down[20] == doctest::Approx(1.0 - 0.5 * 0.2));
}

TEST_CASE("difficulty curves reject a minimum ratio outside (0, 1]") {
  CHECK_THROWS_AS(dif::SnrFlops{0.0}.fractions(ThreeLevels{}), progdiff::ConfigError);
  CHECK_THROWS_AS(dif::UniIncreasingFlops{1.5}.fractions(ThreeLevels{}), progdiff::ConfigError);
  CHECK_THROWS_WITH_AS(dif::ConstantFlops{-1}.fractions(ThreeLevels{}), doctest::Contains("ConstantFlops"),
                       progdiff::ConfigError);
}

TEST_CASE("a user-defined curve works through flops_budget") {
  const auto f = dif::flops_budget(QuadraticFlops{}, ThreeLevels{}, 100.0);
  CHECK(f[2] == doctest::Approx(100.0));
  CHECK(f[0] == doctest::Approx(25.0 + 75.0 / 9.0));
}

}  // namespace progdiff_tests_difficulty

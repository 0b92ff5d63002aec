#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>

#include "progdiff/schedule/schedule.hpp"

namespace progdiff_tests_schedule {

namespace sch = progdiff::schedule;
using nlohmann::json;

namespace {

json load_fixture(const char* name) {
  std::ifstream in(std::string(PROGDIFF_FIXTURES_DIR) + "/schedule/" + name);
  REQUIRE_MESSAGE(in.good(), "missing fixture ", name, " (run tools/fixtures/make_schedule_fixtures.py)");
  json j = json::parse(in);
  if (j.contains("format_version")) REQUIRE(j["format_version"].get<int>() == 1);
  return j;
}

template <class S>
double max_alpha_bar_error(const S& s, const json& expected) {
  REQUIRE(static_cast<std::int64_t>(expected.size()) == s.size());
  double err = 0;
  for (std::int64_t i = 0; i < s.size(); ++i) err = std::max(err, std::abs(s.alpha_bar(i) - expected[i].get<double>()));
  return err;
}

// A user-defined schedule: sigma_t = t (s_t = 1) on 50 points, the simplest VE kernel.
struct UserSchedule {
  std::int64_t size() const { return 50; }
  double time(std::int64_t i) const { return (i + 1) / 50.0; }
  double sigma(std::int64_t i) const { return time(i); }
  double scale(std::int64_t) const { return 1.0; }
  double alpha_bar(std::int64_t i) const { return 1.0 / (1.0 + sigma(i) * sigma(i)); }
};
static_assert(sch::check_noise_schedule<UserSchedule>());
static_assert(!sch::NoiseSchedule<int>);

}  // namespace

TEST_CASE("discrete schedules match diffusers' alphas_cumprod within 1e-6") {
  const json fx = load_fixture("diffusers_schedules.json");
  int checked = 0;
  for (const auto& entry : fx["alphas_cumprod"]) {
    const std::string name = entry["beta_schedule"];
    const std::int64_t T = entry["num_train_timesteps"];
    const auto& expected = entry["alphas_cumprod"];
    CAPTURE(name);
    CAPTURE(T);
    // the run-time schedule, configured with diffusers' keys
    const auto rt = sch::Schedule::from_json(json{{"beta_schedule", name},
                                                  {"num_train_timesteps", T},
                                                  {"beta_start", entry["beta_start"]},
                                                  {"beta_end", entry["beta_end"]}});
    CHECK(max_alpha_bar_error(rt, expected) < 1e-6);
    // the typed schedules
    if (T == 1000 && name == "linear") CHECK(max_alpha_bar_error(sch::Linear<1000>{}, expected) < 1e-6);
    if (T == 4000 && name == "linear") CHECK(max_alpha_bar_error(sch::Linear<4000>{}, expected) < 1e-6);
    if (T == 1000 && name == "scaled_linear") CHECK(max_alpha_bar_error(sch::ScaledLinear<1000>{}, expected) < 1e-6);
    if (T == 1000 && name == "squaredcos_cap_v2") CHECK(max_alpha_bar_error(sch::Cosine<1000>{}, expected) < 1e-6);
    if (T == 4000 && name == "squaredcos_cap_v2") CHECK(max_alpha_bar_error(sch::Cosine<4000>{}, expected) < 1e-6);
    ++checked;
  }
  CHECK(checked == 6);
}

TEST_CASE("respacing matches diffusers' leading, trailing and linspace timesteps") {
  const json fx = load_fixture("diffusers_schedules.json");
  int checked = 0;
  for (const auto& entry : fx["timesteps"]) {
    const std::int64_t T = entry["num_train_timesteps"], S = entry["num_inference_steps"],
                       offset = entry["steps_offset"];
    const std::string spacing = entry["timestep_spacing"];
    CAPTURE(T);
    CAPTURE(S);
    CAPTURE(spacing);
    CAPTURE(offset);
    const auto got = sch::respace(T, S, sch::parse_spacing(spacing), offset);
    const auto want = entry["timesteps"].get<std::vector<std::int64_t>>();
    CHECK(got == want);
    ++checked;
  }
  CHECK(checked == 60);
}

TEST_CASE("Schedule reads diffusers' scheduler_config.json") {
  const auto s = sch::Schedule::from_file(std::string(PROGDIFF_FIXTURES_DIR) + "/schedule/scheduler_config.json");
  CHECK(s.kind() == sch::ScheduleKind::ScaledLinear);
  CHECK(s.size() == 1000);
  CHECK(s.config().steps_offset == 1);
  CHECK(s.config().timestep_spacing == sch::TimestepSpacing::Leading);
  CHECK(s.config().prediction_type == sch::PredictionType::Epsilon);
  // Stable Diffusion's leading spacing with offset 1 at 50 steps: 981, 961, ..., 1
  const auto ts = s.timesteps(50);
  CHECK(ts.front() == 981);
  CHECK(ts.back() == 1);
  // beta_0 = beta_start for scaled_linear (sqrt, then squared)
  CHECK(s.beta(0) == doctest::Approx(0.00085).epsilon(1e-9));
  CHECK(s.beta(999) == doctest::Approx(0.012).epsilon(1e-9));
}

TEST_CASE("Schedule config errors name the key") {
  auto message_of = [](const json& j) {
    try {
      sch::Schedule::from_json(j);
    } catch (const progdiff::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message_of({{"beta_schedule", "quadratic"}}).find("beta_schedule") != std::string::npos);
  CHECK(message_of({{"num_train_timesteps", 0}}).find("num_train_timesteps") != std::string::npos);
  CHECK(message_of({{"num_train_timesteps", 10.5}}).find("num_train_timesteps") != std::string::npos);
  CHECK(message_of({{"beta_start", "small"}}).find("beta_start") != std::string::npos);
  CHECK(message_of({{"timestep_spacing", "middle"}}).find("timestep_spacing") != std::string::npos);
  CHECK(message_of({{"steps_offset", -1}}).find("steps_offset") != std::string::npos);
  CHECK(message_of({{"prediction_type", "noise"}}).find("prediction_type") != std::string::npos);
  CHECK(message_of({{"trained_betas", {0.1, 1.5}}}).find("trained_betas") != std::string::npos);
  CHECK(message_of({{"beta_end", 2.0}}).find("beta") != std::string::npos);
  CHECK(message_of(json::array()).find("object") != std::string::npos);
  CHECK_THROWS_AS(sch::respace(10, 11, sch::TimestepSpacing::Leading), progdiff::ConfigError);
  CHECK_THROWS_AS(sch::Schedule::from_file("/nonexistent/scheduler_config.json"), progdiff::IoError);
}

TEST_CASE("a scheduler_config.json that is missing or not JSON is refused naming the file and the place") {
  const auto dir = std::filesystem::temp_directory_path() / "progdiff_schedule_file_test";
  std::filesystem::create_directories(dir);
  const auto missing = dir / "absent.json";
  std::filesystem::remove(missing);
  CHECK_THROWS_WITH_AS(sch::Schedule::from_file(missing.string()),
                       doctest::Contains(("schedule config " + missing.string() + ": cannot open").c_str()),
                       progdiff::IoError);
  const auto broken = dir / "broken.json";
  std::ofstream(broken) << "{\n  \"beta_start\": 0.0001,\n  \"beta_end\" 0.02\n}\n";
  // The colon is missing on line 3: the error points at the number that came instead (columns 14-17).
  CHECK_THROWS_WITH_AS(
      sch::Schedule::from_file(broken.string()),
      doctest::Contains(("schedule config " + broken.string() + ": malformed JSON at line 3, column 17").c_str()),
      progdiff::FormatError);
  const auto bad_value = dir / "bad_value.json";
  std::ofstream(bad_value) << R"({"beta_start": "small"})";
  CHECK_THROWS_WITH_AS(sch::Schedule::from_file(bad_value.string()),
                       doctest::Contains((bad_value.string() + ": ").c_str()), progdiff::ConfigError);
  std::filesystem::remove_all(dir);
}

TEST_CASE("trained_betas give the cumulative product of 1 - beta") {
  const auto s = sch::Schedule::from_json(json{{"trained_betas", {0.1, 0.2, 0.5}}});
  REQUIRE(s.size() == 3);
  CHECK(s.alpha_bar(0) == doctest::Approx(0.9));
  CHECK(s.alpha_bar(1) == doctest::Approx(0.9 * 0.8));
  CHECK(s.alpha_bar(2) == doctest::Approx(0.9 * 0.8 * 0.5));
  CHECK(s.alpha(2) == doctest::Approx(0.5));
}

TEST_CASE("SNR in dB (Step-Adaptive eq. 7), log-SNR and eq. 1 kernel agree with alpha-bar") {
  const sch::Cosine<4000> s;
  for (std::int64_t i : {0, 1, 17, 1999, 3998, 3999}) {
    const double ab = s.alpha_bar(i);
    CHECK(s.snr_db(i) == doctest::Approx(10 * std::log10(ab / (1 - ab))).epsilon(1e-9));
    CHECK(s.log_snr(i) == doctest::Approx(std::log(ab / (1 - ab))).epsilon(1e-9));
    CHECK(sch::snr_db(s, i) == doctest::Approx(s.snr_db(i)).epsilon(1e-12));
    // VP kernel: s_t = sqrt(alpha-bar), s_t sigma_t = sqrt(1 - alpha-bar)
    CHECK(s.scale(i) == doctest::Approx(std::sqrt(ab)).epsilon(1e-12));
    CHECK(s.scale(i) * s.sigma(i) == doctest::Approx(std::sqrt(1 - ab)).epsilon(1e-9));
  }
  // IDDPM closed form of alpha-bar before clipping: f(t) / f(0)
  auto f = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2);
    return c * c;
  };
  CHECK(s.alpha_bar(1999) == doctest::Approx(f(2000.0 / 4000) / f(0)).epsilon(1e-10));
  // 1 - alpha-bar at the first step is the first beta, kept without cancellation
  CHECK(s.one_minus_alpha_bar(0) == doctest::Approx(1 - f(1.0 / 4000) / f(0)).epsilon(1e-9));
  CHECK(s.time(3999) == 1.0);
}

TEST_CASE("continuous VP: s_t^2 = exp(-integral of beta), checked by quadrature") {
  const sch::VP vp(101);
  for (std::int64_t i : {0, 10, 50, 100}) {
    const double t = vp.time(i);
    // Simpson's rule on beta(u) = 0.1 + 19.9 u over [0, t]
    const int n = 200;
    double integral = 0;
    for (int k = 0; k <= n; ++k) {
      const double u = t * k / n, w = (k == 0 || k == n) ? 1 : (k % 2 ? 4 : 2);
      integral += w * (0.1 + 19.9 * u);
    }
    integral *= t / (3.0 * n);
    CHECK(vp.alpha_bar(i) == doctest::Approx(std::exp(-integral)).epsilon(1e-10));
    CHECK(vp.scale(i) * vp.scale(i) == doctest::Approx(std::exp(-integral)).epsilon(1e-10));
    CHECK(std::pow(vp.scale(i) * vp.sigma(i), 2) == doctest::Approx(1 - std::exp(-integral)).epsilon(1e-9));
  }
  CHECK(vp.time(0) == doctest::Approx(1e-5));
  CHECK(vp.time(100) == 1.0);
}

TEST_CASE("continuous VE and EDM: s_t = 1 and sigma at the ends") {
  const sch::EDM edm(18);
  CHECK(edm.scale(5) == 1.0);
  CHECK(edm.sigma(0) == doctest::Approx(0.002).epsilon(1e-12));
  CHECK(edm.sigma(17) == doctest::Approx(80.0).epsilon(1e-12));
  // Karras et al. eq. 5: sigma_i for i = 0..N-1 sampling steps, sigma_0 = sigma_max;
  // grid point j is sampling step i = N - 1 - j
  const double lo = std::pow(0.002, 1 / 7.0), hi = std::pow(80.0, 1 / 7.0);
  for (int i = 0; i < 18; ++i)
    CHECK(edm.sigma(17 - i) == doctest::Approx(std::pow(hi + i / 17.0 * (lo - hi), 7.0)).epsilon(1e-12));
  CHECK(edm.alpha_bar(3) == doctest::Approx(1 / (1 + edm.sigma(3) * edm.sigma(3))).epsilon(1e-12));
  const sch::VE ve(11);
  CHECK(ve.sigma(0) == doctest::Approx(0.01));
  CHECK(ve.sigma(10) == doctest::Approx(50.0));
  CHECK(ve.sigma(5) == doctest::Approx(std::sqrt(0.01 * 50.0)).epsilon(1e-12));  // geometric midpoint
  const auto rt = sch::Schedule::from_json(json{{"beta_schedule", "edm"}, {"grid_size", 18}});
  CHECK(rt.sigma(17) == doctest::Approx(80.0));
  CHECK(rt.size() == 18);
}

TEST_CASE("a user-defined schedule gets the derived quantities") {
  const UserSchedule u;
  // sigma(24) = 0.5: SNR = 4, 10 log10(4) dB, log-SNR = ln 4
  CHECK(sch::snr(u, 24) == doctest::Approx(4.0));
  CHECK(sch::snr_db(u, 24) == doctest::Approx(10 * std::log10(4.0)));
  CHECK(sch::log_snr(u, 24) == doctest::Approx(std::log(4.0)));
  CHECK(u.alpha_bar(24) == doctest::Approx(4.0 / 5.0));
}

}  // namespace progdiff_tests_schedule

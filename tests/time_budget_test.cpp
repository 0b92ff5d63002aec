// The main job's --minutes plan (apps/progressive/time_budget.hpp): the step counts against the
// budget's arithmetic worked by hand, the refusal when the evaluation alone fills the budget, and
// the recorded plan read back whole or refused naming the file and the field.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "../apps/progressive/time_budget.hpp"

namespace progdiff_tests_time_budget {

namespace fs = std::filesystem;

TEST_CASE("time budget: the steps fill what the evaluation leaves of the minutes") {
  // 2 minutes at 1 GFLOP/s, 6 s of which went to measuring: the evaluation's 24 GFLOPs take 24 s,
  // leaving 90 s for training; 60 GFLOPs of training at the configured steps take 60 s, so they
  // scale by 1.5.
  const auto p = job::plan_time_budget(2.0, 1e9, 6.0, 6e10, 2.4e10, 100, 10, "test cpu");
  CHECK(p.scale == doctest::Approx(1.5));
  CHECK(p.evaluation_seconds == doctest::Approx(24.0));
  CHECK(p.measuring_seconds == 6.0);
  CHECK(p.steps == 150);
  CHECK(p.stage2_steps == 15);
  // A budget smaller than the configuration's cost shrinks it, but never below one stage-1 step.
  CHECK(job::plan_time_budget(0.5, 1e9, 0.0, 6e10, 0.0, 100, 10, "").steps == 50);
  CHECK(job::plan_time_budget(0.5, 1e9, 0.0, 6e13, 0.0, 100, 10, "").steps == 1);
  CHECK_THROWS_WITH_AS(job::plan_time_budget(0.5, 1e9, 0.0, 6e10, 3e10, 100, 10, ""),
                       doctest::Contains("the evaluation alone is estimated at 0.5 minutes"), progdiff::ConfigError);
  CHECK_THROWS_AS(job::time_budget_scale(1.0, 0.0, 1.0, 0.0), progdiff::ConfigError);
}

TEST_CASE("time budget: a recorded plan is read back whole, and a broken one is refused by name") {
  const fs::path dir = fs::temp_directory_path() / "progdiff_time_budget_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path path = dir / "time_budget.json";
  CHECK_FALSE(job::read_time_budget(path).has_value());
  const auto written = job::plan_time_budget(10.0, 2.5e11, 5.0, 1e14, 1e13, 1000, 200, "some cpu");
  job::write_time_budget(path, written);
  const auto read = job::read_time_budget(path);
  REQUIRE(read.has_value());
  CHECK(read->minutes == written.minutes);
  CHECK(read->flops_per_second == written.flops_per_second);
  CHECK(read->scale == written.scale);
  CHECK(read->measuring_seconds == 5.0);
  CHECK(read->steps == written.steps);
  CHECK(read->stage2_steps == written.stage2_steps);
  CHECK(read->cpu == "some cpu");
  std::ofstream(path) << R"({"format": "progdiff.time_budget", "version": 1, "minutes": 10})";
  CHECK_THROWS_WITH_AS(job::read_time_budget(path), doctest::Contains("\"flops_per_second\" is missing"),
                       progdiff::FormatError);
  std::ofstream(path) << "{";
  CHECK_THROWS_WITH_AS(job::read_time_budget(path), doctest::Contains("time_budget.json: malformed JSON at line 1"),
                       progdiff::FormatError);
  std::ofstream(path) << R"({"format": "progdiff.checkpoint"})";
  CHECK_THROWS_WITH_AS(job::read_time_budget(path), doctest::Contains("not a time budget plan"), progdiff::FormatError);
  fs::remove_all(dir);
}

}  // namespace progdiff_tests_time_budget

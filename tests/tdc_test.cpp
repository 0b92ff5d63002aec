// The TDC pipeline (tdc/pipeline.hpp): FLOPs of each pruned group within its budget by the
// layers' own count, fine-tuning confined to the group's timesteps, kill-and-resume group by group
// equal to an uninterrupted run, clear errors for a corrupted group checkpoint and for mismatched
// reruns, and groups run separately (as parallel processes) then assembled equal to one process.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/group/flops_interval.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/unet/unet.hpp"
#include "tdc_support.hpp"
#include "train_support.hpp"

namespace progdiff_tests_tdc {

namespace {

namespace unet = progdiff::unet;
namespace model = progdiff::model;
namespace train = progdiff::train;
namespace tdc = progdiff::tdc;
namespace fs = std::filesystem;
using progdiff::Generator;
using progdiff::Shape;

using tdc_test::base_model;
using tdc_test::Net;
using tdc_test::patterns;
using tdc_test::Schedule;
using tdc_test::three_groups;

tdc::TdcOptions options(const fs::path& dir, tdc::TdcPruning pruning, std::int64_t steps) {
  tdc::TdcOptions o = tdc_test::small_options(dir, pruning, steps);
  o.finetune.seed = 11;
  o.finetune.lr.lr = 1e-3;
  o.finetune.ema.decay = 0.9;
  o.finetune.checkpoint_every = 2;
  return o;
}

const train_test::ScratchDir scratch("progdiff_tdc_test");
using train_test::all_weights;
using train_test::Killed;

// Bit-for-bit comparisons run on one thread: the float convolution's weight gradient sums
// per-thread partial sums over a dynamic schedule of samples (backend/cpu/detail/conv_avx512.hpp), so
// with several threads the rounding of a step may differ between two identical runs.
struct OneThread {
  int before = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(before); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;
};

struct Fixture {
  progdiff::data::ImageDataset train_data = patterns(24, 0.0), eval_data = patterns(8, 1.3);
  Schedule schedule;
  model::Progressive<Net> base = base_model();

  tdc::TdcResult<Net> run(const tdc::TdcOptions& o, tdc::TdcStepCallback cb = {}) {
    return tdc::run_tdc(base, three_groups(), schedule, train_data, eval_data, o, std::move(cb));
  }
};

}  // namespace

TEST_CASE("every criterion prunes each group to at or below its FLOPs budget, by the layers' own count") {
  const auto partition = three_groups();
  REQUIRE(partition.groups() == 3);
  CHECK(partition.budgets[0] == doctest::Approx(0.6));
  CHECK(partition.budgets[2] == doctest::Approx(1.0));
  const Shape image{1, 1, 8, 8};
  for (auto pruning : {tdc::TdcPruning::Random, tdc::TdcPruning::Magnitude, tdc::TdcPruning::Taylor,
                       tdc::TdcPruning::DiffPruning, tdc::TdcPruning::Proxy}) {
    const std::string criterion = tdc::tdc_pruning_name(pruning);
    CAPTURE(criterion);
    Fixture f;
    const fs::path dir = scratch(std::string("budget_") + tdc::tdc_pruning_name(pruning));
    auto r = f.run(options(dir, pruning, 0));
    REQUIRE(r.model.has_value());
    const double base_flops = static_cast<double>(f.base.denoiser(0).flops(image));
    CHECK(r.report.base_flops == static_cast<std::int64_t>(base_flops));
    double average = 0.0;
    for (std::int64_t g = 0; g < 3; ++g) {
      const double flops = static_cast<double>(r.model->denoiser(g).flops(image));
      CHECK(flops <= partition.budgets[static_cast<std::size_t>(g)] * base_flops);
      CHECK(r.report.groups[static_cast<std::size_t>(g)].flops == static_cast<std::int64_t>(flops));
      average += flops * static_cast<double>(partition.end(g) - partition.begin(g)) / Schedule::steps;
      CHECK(fs::exists(dir / ("group" + std::to_string(g)) / "memory_bank.json"));
      CHECK(fs::exists(dir / ("group" + std::to_string(g)) / "done.json"));
    }
    // pruned where the budget is below 1, and far enough to be more than one channel step off
    CHECK(r.model->denoiser(0).flops(image) < 0.65 * base_flops);
    CHECK(r.model->denoiser(0).parameter_count() < f.base.denoiser(0).parameter_count());
    CHECK(r.model->denoiser(2).flops(image) == static_cast<std::int64_t>(base_flops));
    CHECK(r.report.average_flops == doctest::Approx(average));
    CHECK(r.report.average_flops < base_flops);
  }
}

TEST_CASE("proxy pruning keeps the lowest held-out loss of its memory bank, and the bank lists every evaluation") {
  Fixture f;
  const fs::path dir = scratch("proxy_bank");
  auto o = options(dir, tdc::TdcPruning::Proxy, 0);
  auto r = f.run(o);
  for (std::int64_t g = 0; g < 2; ++g) {  // group 2 has budget 1: nothing to search
    std::ifstream in(dir / ("group" + std::to_string(g)) / "memory_bank.json");
    const auto bank = nlohmann::json::parse(in);
    REQUIRE(bank["entries"].size() >= 2);
    CHECK(bank["completed_rounds"] == 2);
    double best = 1e300;
    for (const auto& e : bank["entries"]) best = std::min(best, e["loss"].get<double>());
    CHECK(r.report.groups[static_cast<std::size_t>(g)].pruned_loss == doctest::Approx(best).epsilon(1e-12));
    CHECK(r.report.groups[static_cast<std::size_t>(g)].proxy_evaluations ==
          static_cast<std::int64_t>(bank["entries"].size()));
  }
}

TEST_CASE("fine-tuning draws only the group's timesteps") {
  Fixture f;
  auto o = options(scratch("timesteps"), tdc::TdcPruning::Magnitude, 3);
  struct Log {
    std::vector<std::vector<std::int64_t>> ranges;  // {group, begin, end} per factory call
    std::vector<std::vector<std::int64_t>> draws;   // per group
  };
  auto log = std::make_shared<Log>();
  log->draws.resize(3);
  struct Recording {
    train::UniformTimesteps inner;
    std::shared_ptr<Log> log;
    std::int64_t group;
    train::TimestepDraw draw(Generator& gen, std::int64_t count) {
      train::TimestepDraw d = inner.draw(gen, count);
      for (auto t : d.timesteps) log->draws[static_cast<std::size_t>(group)].push_back(t);
      return d;
    }
    std::pair<std::int64_t, std::int64_t> range() const { return inner.range(); }
  };
  o.finetune.make_sampler = [log](std::int64_t g, std::int64_t b, std::int64_t e) {
    log->ranges.push_back({g, b, e});
    return train::AnyTimestepSampler(Recording{train::UniformTimesteps(b, e), log, g});
  };
  f.run(o);
  const auto p = three_groups();
  REQUIRE(log->ranges.size() == 3);
  for (std::int64_t g = 0; g < 3; ++g) {
    CHECK(log->ranges[static_cast<std::size_t>(g)] == std::vector<std::int64_t>{g, p.begin(g), p.end(g)});
    const auto& d = log->draws[static_cast<std::size_t>(g)];
    CHECK(d.size() == 3 * 4);  // steps x batch
    for (auto t : d) {
      CHECK(t >= p.begin(g));
      CHECK(t < p.end(g));
    }
  }
}

TEST_CASE("a run killed in one group's fine-tuning resumes group by group to the same weights") {
  OneThread one_thread;
  Fixture whole;
  auto uninterrupted = whole.run(options(scratch("resume_whole"), tdc::TdcPruning::Proxy, 6));
  const auto expected = all_weights<float>(*uninterrupted.model);

  const fs::path dir = scratch("resume_killed");
  const auto o = options(dir, tdc::TdcPruning::Proxy, 6);
  {
    Fixture f;
    CHECK_THROWS_AS(f.run(o,
                          [](std::int64_t g, const train::StepInfo& s) {
                            if (g == 1 && s.step == 3) throw Killed{};
                          }),
                    Killed);
  }
  CHECK(fs::exists(dir / "group0" / "done.json"));
  CHECK(!fs::exists(dir / "group1" / "done.json"));
  CHECK(fs::exists(dir / "group1" / "checkpoint.safetensors"));
  CHECK(!fs::exists(dir / "group2" / "memory_bank.json"));
  {
    Fixture f;  // killed again, in the last group, after its pruned net was saved
    CHECK_THROWS_AS(f.run(o,
                          [](std::int64_t g, const train::StepInfo& s) {
                            if (g == 2 && s.step == 1) throw Killed{};
                          }),
                    Killed);
  }
  CHECK(fs::exists(dir / "group1" / "done.json"));
  CHECK(fs::exists(dir / "group2" / "pruned.safetensors"));
  CHECK(!fs::exists(dir / "group2" / "checkpoint.safetensors"));
  Fixture f;
  std::vector<std::int64_t> trained_groups;
  auto resumed = f.run(o, [&](std::int64_t g, const train::StepInfo& s) {
    if (s.step == 1 || trained_groups.empty() || trained_groups.back() != g) trained_groups.push_back(g);
  });
  CHECK(trained_groups == std::vector<std::int64_t>{2});  // groups 0 and 1 are not trained again
  CHECK(resumed.report.groups[0].reused);
  CHECK(resumed.report.groups[1].reused);
  CHECK(!resumed.report.groups[2].reused);
  CHECK(all_weights<float>(*resumed.model) == expected);
  CHECK(resumed.report.average_flops == uninterrupted.report.average_flops);
}

TEST_CASE("a corrupted group checkpoint is an error naming the group and the file") {
  const fs::path dir = scratch("corrupt");
  const auto o = options(dir, tdc::TdcPruning::Magnitude, 6);
  {
    Fixture f;
    CHECK_THROWS_AS(f.run(o,
                          [](std::int64_t g, const train::StepInfo& s) {
                            if (g == 1 && s.step == 3) throw Killed{};
                          }),
                    Killed);
  }
  const fs::path ckpt = dir / "group1" / "checkpoint.safetensors";
  REQUIRE(fs::exists(ckpt));
  fs::resize_file(ckpt, fs::file_size(ckpt) / 2);
  Fixture f;
  try {
    f.run(o);
    FAIL("a truncated checkpoint was accepted");
  } catch (const progdiff::FormatError& e) {
    const std::string what = e.what();
    CHECK(what.find("TDC group 1") != std::string::npos);
    CHECK(what.find(ckpt.string()) != std::string::npos);
  }
  // garbage in place of a header is refused the same way
  {
    std::ofstream out(ckpt, std::ios::binary | std::ios::trunc);
    out << "not a safetensors file at all";
  }
  CHECK_THROWS_AS(f.run(o), progdiff::FormatError);
}

TEST_CASE("groups run separately, as parallel processes would, then assembled equal one process") {
  OneThread one_thread;
  Fixture one;
  auto together = one.run(options(scratch("parallel_one"), tdc::TdcPruning::Taylor, 4));

  const fs::path dir = scratch("parallel_split");
  for (std::int64_t g : {2, 0, 1}) {  // any order, each with a fresh base as a new process would load
    Fixture f;
    auto o = options(dir, tdc::TdcPruning::Taylor, 4);
    o.only_group = g;
    auto r = f.run(o);
    CHECK(!r.model.has_value());
    REQUIRE(r.report.groups.size() == 1);
    CHECK(r.report.groups[0].group == g);
  }
  Fixture f;
  auto assembled = f.run(options(dir, tdc::TdcPruning::Taylor, 4));
  REQUIRE(assembled.model.has_value());
  for (const auto& g : assembled.report.groups) CHECK(g.reused);
  CHECK(all_weights<float>(*assembled.model) == all_weights<float>(*together.model));
  CHECK(assembled.model->widths() == together.model->widths());
  CHECK(assembled.report.average_flops == together.report.average_flops);
  for (std::size_t g = 0; g < 3; ++g)
    CHECK(assembled.report.groups[g].finetuned_loss == together.report.groups[g].finetuned_loss);
}

TEST_CASE("assembly before every group finished, and a rerun with other settings, are ConfigErrors") {
  const fs::path dir = scratch("settings");
  {
    Fixture f;
    auto o = options(dir, tdc::TdcPruning::Random, 2);
    o.only_group = 1;
    f.run(o);
    tdc::TdcPipeline<Net, Schedule> p(f.base, three_groups(), f.schedule, f.train_data, f.eval_data,
                                      options(dir, tdc::TdcPruning::Random, 2));
    try {
      p.assemble();
      FAIL("assembled with groups missing");
    } catch (const progdiff::ConfigError& e) {
      CHECK(std::string(e.what()).find("group(s) 0, 2") != std::string::npos);
    }
  }
  Fixture f;
  try {
    f.run(options(dir, tdc::TdcPruning::Magnitude, 2));
    FAIL("a run with another criterion reused the directory");
  } catch (const progdiff::ConfigError& e) {
    CHECK(std::string(e.what()).find("pruning") != std::string::npos);
  }
  CHECK_THROWS_AS(tdc::parse_tdc_pruning("lottery"), progdiff::ConfigError);
  CHECK(tdc::parse_tdc_pruning("diff-pruning") == tdc::TdcPruning::DiffPruning);
}

}  // namespace progdiff_tests_tdc

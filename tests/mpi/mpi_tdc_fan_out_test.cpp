// TDC groups fanned out over 2 ranks (tdc/fan_out.hpp): rank 0 prunes and fine-tunes
// groups 0 and 2, rank 1 group 1, and every rank assembles the model that one process running
// run_tdc over all three groups builds, bit for bit (each group runs in one process either way).
// With the proxy's evaluations shared too, both ranks search every group's pruning scheme first,
// and the model and the memory banks are still the serial run's.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "../tdc_support.hpp"
#include "mpi_support.hpp"
#include "progdiff/tdc/fan_out.hpp"

namespace progdiff_mpi_tests_tdc_fan_out {

namespace {

progdiff::tdc::TdcOptions tdc_options(const std::filesystem::path& dir) {
  progdiff::tdc::TdcOptions o;
  o.out_dir = dir;
  o.pruning = progdiff::tdc::TdcPruning::Taylor;
  o.seed = 3;
  o.importance_batches = 2;
  o.importance_batch_size = 4;
  o.eval_samples = 8;
  o.eval_batch_size = 4;
  o.finetune.steps = 3;
  o.finetune.batch_size = 4;
  o.finetune.seed = 11;
  o.finetune.lr.lr = 1e-3;
  o.finetune.progress.mode = progdiff::train::ProgressOptions::Mode::Off;
  return o;
}

std::string file_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The data, schedule and groups both cases share, and the serial reference run on rank 0.
struct FanOutCase {
  progdiff::distributed::MpiCommunicator comm;
  std::filesystem::path dir;
  progdiff::data::ImageDataset train_data = tdc_test::patterns(24, 0.0), validation = tdc_test::patterns(8, 1.3);
  tdc_test::Schedule schedule;
  progdiff::group::Partition partition = tdc_test::three_groups();

  explicit FanOutCase(const char* name) : dir(mpi_test::shared_dir(comm, name)) { REQUIRE(comm.size() == 2); }

  /// Rank 0 runs every group in one process; its weights (empty on the other ranks).
  std::vector<double> serial_weights(const progdiff::tdc::TdcOptions& options) {
    if (comm.rank() != 0) return {};
    auto serial_base = tdc_test::base_model();
    auto serial = progdiff::tdc::run_tdc(serial_base, partition, schedule, train_data, validation, options);
    REQUIRE(serial.model.has_value());
    return mpi_test::weights(*serial.model);
  }
};

}  // namespace

TEST_CASE("TDC groups over 2 ranks: each rank trains its groups, every rank assembles the serial model") {
  FanOutCase c("tdc_fan_out");
  auto& comm = c.comm;
  const auto& dir = c.dir;
  const auto& partition = c.partition;
  // rank 0 runs every group in one process, as the reference
  const std::vector<double> serial_weights = c.serial_weights(tdc_options(dir / "serial"));

  std::set<std::int64_t> trained;  // the groups this rank fine-tuned
  auto base = tdc_test::base_model();
  auto fanned = progdiff::tdc::run_tdc_over_ranks(
      comm, base, partition, c.schedule, c.train_data, c.validation, tdc_options(dir / "fanned"),
      [&](std::int64_t g, const progdiff::train::StepInfo&) { trained.insert(g); });
  CHECK(trained == (comm.rank() == 0 ? std::set<std::int64_t>{0, 2} : std::set<std::int64_t>{1}));
  REQUIRE(fanned.model.has_value());
  REQUIRE(fanned.report.groups.size() == 3);
  for (const auto& g : fanned.report.groups) CHECK(g.reused);                       // the assembly only read them
  if (comm.rank() == 0) CHECK(mpi_test::weights(*fanned.model) == serial_weights);  // bit for bit
  CHECK(mpi_test::same_on_every_rank(comm, mpi_test::weights(*fanned.model)));

  auto o = tdc_options(dir / "refused");
  o.only_group = 1;
  CHECK_THROWS_WITH_AS(
      progdiff::tdc::run_tdc_over_ranks(comm, base, partition, c.schedule, c.train_data, c.validation, o),
      doctest::Contains("the ranks choose their groups here"), progdiff::ConfigError);
}

TEST_CASE("TDC over 2 ranks with the proxy's evaluations shared: the serial model and memory banks") {
  FanOutCase c("tdc_fan_out_proxy");
  auto& comm = c.comm;
  const auto& dir = c.dir;
  const auto& partition = c.partition;
  auto proxy_options = [&](const std::filesystem::path& out) {
    auto o = tdc_options(out);
    o.pruning = progdiff::tdc::TdcPruning::Proxy;
    o.proxy_rounds = 2;
    o.proxy_candidates = 3;
    return o;
  };

  const std::vector<double> serial_weights = c.serial_weights(proxy_options(dir / "serial"));
  auto base = tdc_test::base_model();
  auto fanned = progdiff::tdc::run_tdc_over_ranks(comm, base, partition, c.schedule, c.train_data, c.validation,
                                                  proxy_options(dir / "fanned"), {},
                                                  progdiff::tdc::TdcFanOut::ProxyEvaluationsToo);
  REQUIRE(fanned.model.has_value());
  CHECK(mpi_test::same_on_every_rank(comm, mpi_test::weights(*fanned.model)));
  if (comm.rank() == 0) {
    CHECK(mpi_test::weights(*fanned.model) == serial_weights);  // bit for bit
    std::int64_t searched = 0;
    for (std::int64_t g = 0; g < partition.groups(); ++g) {
      const std::string bank = "group" + std::to_string(g) + "/memory_bank.json";
      if (!std::filesystem::exists(dir / "serial" / bank)) continue;  // a group within budget is not searched
      ++searched;
      CHECK(file_text(dir / "fanned" / bank) == file_text(dir / "serial" / bank));
    }
    CHECK(searched >= 1);
  }
}

}  // namespace progdiff_mpi_tests_tdc_fan_out

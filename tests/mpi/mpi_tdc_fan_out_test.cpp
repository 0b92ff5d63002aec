// TDC groups fanned out over 2 ranks (tdc/fan_out.hpp): rank 0 prunes and fine-tunes
// groups 0 and 2, rank 1 group 1, and every rank assembles the model that one process running
// run_tdc over all three groups builds, bit for bit (each group runs in one process either way).
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "../tdc_support.hpp"
#include "mpi_support.hpp"
#include "progdiff/tdc/fan_out.hpp"

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

}  // namespace

TEST_CASE("TDC groups over 2 ranks: each rank trains its groups, every rank assembles the serial model") {
  progdiff::distributed::MpiCommunicator comm;
  REQUIRE(comm.size() == 2);
  const auto dir = mpi_test::shared_dir(comm, "tdc_fan_out");
  const auto train_data = tdc_test::patterns(24, 0.0), validation = tdc_test::patterns(8, 1.3);
  const tdc_test::Schedule schedule;
  const auto partition = tdc_test::three_groups();

  std::vector<double> serial_weights;  // rank 0 runs every group in one process, as the reference
  if (comm.rank() == 0) {
    auto serial_base = tdc_test::base_model();
    auto serial =
        progdiff::tdc::run_tdc(serial_base, partition, schedule, train_data, validation, tdc_options(dir / "serial"));
    REQUIRE(serial.model.has_value());
    serial_weights = mpi_test::weights(*serial.model);
  }

  std::set<std::int64_t> trained;  // the groups this rank fine-tuned
  auto base = tdc_test::base_model();
  auto fanned = progdiff::tdc::run_tdc_over_ranks(
      comm, base, partition, schedule, train_data, validation, tdc_options(dir / "fanned"),
      [&](std::int64_t g, const progdiff::train::StepInfo&) { trained.insert(g); });
  CHECK(trained == (comm.rank() == 0 ? std::set<std::int64_t>{0, 2} : std::set<std::int64_t>{1}));
  REQUIRE(fanned.model.has_value());
  REQUIRE(fanned.report.groups.size() == 3);
  for (const auto& g : fanned.report.groups) CHECK(g.reused);                       // the assembly only read them
  if (comm.rank() == 0) CHECK(mpi_test::weights(*fanned.model) == serial_weights);  // bit for bit
  CHECK(mpi_test::same_on_every_rank(comm, mpi_test::weights(*fanned.model)));

  auto o = tdc_options(dir / "refused");
  o.only_group = 1;
  CHECK_THROWS_WITH_AS(progdiff::tdc::run_tdc_over_ranks(comm, base, partition, schedule, train_data, validation, o),
                       doctest::Contains("the ranks choose their groups here"), progdiff::ConfigError);
}

// Data-parallel training on 2 ranks against the same training in one process (run on each rank
// beside it, as the reference): stage 1, stage 2 and multi-stage at one global batch, an uneven
// split, float32, bit-identical repeats, gradient buckets, timed exchanges, a multi-stage
// checkpoint of 2 ranks resumed in one process, and dropout (masks keyed by global sample
// index) in stage 1, stage 2 and multi-stage.
//
// Tolerance: the ranks' gradients are partial sums that MPI adds, where one process sums the
// whole batch inside each kernel; the two orders of summation differ by rounding only, about
// 1e-16 of a gradient's size in double. AdamW divides by sqrt(v) + eps with eps = 1e-8, so an
// absolute gradient difference d moves an update by at most lr * d / eps: with gradients below
// 1 and lr = 1e-3 that is <= 1e-3 * 1e-16 / 1e-8 = 1e-11 per step, so kTolerance = 1e-10 for
// these runs of at most 6 steps (measured: at most 6e-14). In float32 the same bound is 1e-4 per
// step for gradients near 1e-2; kFloatTolerance = 1e-4 (measured: 5.4e-6 after 4 steps). The
// losses agree to 1e-12 (double) and 1e-5 (float) relative.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mpi_support.hpp"
#include "progdiff/train/multi_stage.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"

namespace progdiff_mpi_tests_equal_ranks {

using namespace mpi_test;

namespace {

constexpr double kTolerance = 1e-10;
constexpr double kFloatTolerance = 1e-4;

void check_losses(const train::TrainReport& a, const train::TrainReport& b, double tolerance) {
  REQUIRE(a.steps.size() == b.steps.size());
  for (std::size_t i = 0; i < a.steps.size(); ++i) {
    CHECK(a.steps[i].loss == doctest::Approx(b.steps[i].loss).epsilon(tolerance));
    REQUIRE(a.steps[i].group_losses.size() == b.steps[i].group_losses.size());
  }
}

}  // namespace

TEST_CASE("stage 1: 2 ranks train as 1 rank at the same global batch, and repeat bit for bit") {
  distributed::MpiCommunicator comm;
  REQUIRE(comm.size() == 2);
  const auto data = patterns(12);
  const Schedule schedule;
  for (const std::int64_t batch : {4, 5}) {  // even split, and 3 + 2
    CAPTURE(batch);
    auto single = base_model(1);
    const auto reference = train::train_stage1(single, schedule, data, options(4, batch));
    // rank 1 starts from other weights: the trainer gives every rank rank 0's
    auto first = base_model(1 + 100 * static_cast<std::uint64_t>(comm.rank()));
    const auto run1 = train::train_stage1(first, schedule, data, options(4, batch), train::SimpleObjective{}, {}, comm);
    auto second = base_model(1);
    const auto run2 =
        train::train_stage1(second, schedule, data, options(4, batch), train::SimpleObjective{}, {}, comm);

    check_losses(run1, reference, 1e-12);
    const double difference = max_abs_difference(weights(first), weights(single));
    MESSAGE("stage 1, batch " << batch << ": max |w(2 ranks) - w(1 rank)| = " << difference);
    CHECK(difference <= kTolerance);
    CHECK(weights(first) != weights(base_model(1)));  // it trained
    CHECK(same_on_every_rank(comm, weights(first)));
    CHECK(weights(second) == weights(first));  // bit for bit
    for (std::size_t i = 0; i < run1.steps.size(); ++i) CHECK(run2.steps[i].loss == run1.steps[i].loss);
  }
}

TEST_CASE("gradient buckets of 8 values (parameters spanning buckets) sum as one bucket does, bit for bit") {
  distributed::MpiCommunicator comm;
  const auto data = patterns(12);
  const Schedule schedule;
  auto whole = base_model(2), pieces = base_model(2);
  auto small = options(3, 4);
  small.allreduce_bucket_bytes = 8 * sizeof(double);
  train::train_stage1(whole, schedule, data, options(3, 4), train::SimpleObjective{}, {}, comm);
  train::train_stage1(pieces, schedule, data, small, train::SimpleObjective{}, {}, comm);
  CHECK(weights(pieces) == weights(whole));
}

TEST_CASE("a communicator with a timeout (non-blocking exchanges, polled) trains bit for bit as a blocking one") {
  distributed::MpiCommunicator blocking, timed(MPI_COMM_WORLD, std::chrono::seconds(60));
  const auto data = patterns(12);
  const Schedule schedule;
  auto a = base_model(2), b = base_model(2);
  train::train_stage1(a, schedule, data, options(3, 4), train::SimpleObjective{}, {}, blocking);
  train::train_stage1(b, schedule, data, options(3, 4), train::SimpleObjective{}, {}, timed);
  CHECK(weights(b) == weights(a));
}

TEST_CASE("stage 2: each group's batch splits over 2 ranks as in 1 rank") {
  distributed::MpiCommunicator comm;
  const auto data = patterns(12);
  const Schedule schedule;
  const progdiff::group::Partition partition{{0, 40, 100}, {}};
  auto base_single = base_model(3), base_ranks = base_model(3);
  auto single = train::train_stage2(base_single, partition, schedule, data, options(3, 4), train::SimpleObjective{});
  train::TrainReport report;
  auto grouped = train::train_stage2(base_ranks, partition, schedule, data, options(3, 4), train::SimpleObjective{}, {},
                                     &report, {}, comm);
  REQUIRE(report.steps.size() == 3);
  CHECK(report.steps[0].group_losses.size() == 2);
  const double difference = max_abs_difference(weights(grouped), weights(single));
  MESSAGE("stage 2: max |w(2 ranks) - w(1 rank)| = " << difference);
  CHECK(difference <= kTolerance);
  CHECK(same_on_every_rank(comm, weights(grouped)));
}

TEST_CASE("multi-stage: mixed batches split over 2 ranks as in 1 rank") {
  distributed::MpiCommunicator comm;
  const auto data = patterns(16);
  const Schedule schedule;
  auto single = multi_model(12), ranks = multi_model(12);
  const auto reference = train::train_multi_stage(single, schedule, data, options(4, 8));
  const auto run = train::train_multi_stage(ranks, schedule, data, options(4, 8), train::SimpleObjective{}, {}, comm);
  check_losses(run, reference, 1e-12);
  for (std::size_t i = 0; i < run.steps.size(); ++i)
    for (std::size_t k = 0; k < 2; ++k)  // the same samples went to each decoder (NaN: none did)
      CHECK(std::isnan(run.steps[i].group_losses[k]) == std::isnan(reference.steps[i].group_losses[k]));
  const double difference = max_abs_difference(weights(ranks), weights(single));
  MESSAGE("multi-stage: max |w(2 ranks) - w(1 rank)| = " << difference);
  CHECK(difference <= kTolerance);
  CHECK(same_on_every_rank(comm, weights(ranks)));
}

TEST_CASE("multi-stage: a checkpoint of 2 ranks resumes in 1 process") {
  distributed::MpiCommunicator comm;
  const auto dir = shared_dir(comm, "multi_resume");
  const auto data = patterns(16);
  const Schedule schedule;
  auto uninterrupted = multi_model(12);
  train::train_multi_stage(uninterrupted, schedule, data, options(5, 8));
  train::TrainOptions o = options(5, 8);
  o.checkpoint_every = 2;
  o.checkpoint_path = dir / "checkpoint.safetensors";
  struct Stopped {};
  auto stopped = multi_model(12);
  CHECK_THROWS_AS(train::train_multi_stage(
                      stopped, schedule, data, o, train::SimpleObjective{},
                      [](const train::StepInfo& s) {
                        if (s.step == 3) throw Stopped{};
                      },
                      comm),
                  Stopped);
  comm.barrier();
  if (comm.rank() == 0) {
    auto resumed = multi_model(99);
    const auto report = train::train_multi_stage(resumed, schedule, data, o);
    CHECK(report.first_step == 2);
    const double difference = max_abs_difference(weights(resumed), weights(uninterrupted));
    MESSAGE("multi-stage, 2 ranks -> 1 rank: max |w - w(1 rank uninterrupted)| = " << difference);
    CHECK(difference <= kTolerance);
  }
  comm.barrier();
}

TEST_CASE("float32: 2 ranks train as 1 rank within float rounding") {
  distributed::MpiCommunicator comm;
  const auto data = patterns(12);
  const Schedule schedule;
  using FloatNet = SmallNet<float>;
  auto single = base_model<FloatNet>(5), ranks = base_model<FloatNet>(5);
  const auto reference = train::train_stage1(single, schedule, data, options(4, 4));
  const auto run = train::train_stage1(ranks, schedule, data, options(4, 4), train::SimpleObjective{}, {}, comm);
  check_losses(run, reference, 1e-5);
  const double difference = max_abs_difference(weights(ranks), weights(single));
  MESSAGE("float32: max |w(2 ranks) - w(1 rank)| = " << difference);
  CHECK(difference <= kFloatTolerance);
  CHECK(same_on_every_rank(comm, weights(ranks)));
}

TEST_CASE("dropout 10%: 2 ranks train as 1 rank at the same global batch, masks keyed by global sample") {
  distributed::MpiCommunicator comm;
  const auto data = patterns(12);
  const Schedule schedule;
  using DropNet = SmallNet<double, 10>;
  for (const std::int64_t batch : {4, 5}) {  // even split, and 3 + 2
    CAPTURE(batch);
    auto single = base_model<DropNet>(1);
    const auto reference = train::train_stage1(single, schedule, data, options(4, batch));
    // rank 1 starts from other weights and dropout seeds: the trainer gives every rank rank 0's
    auto ranks = base_model<DropNet>(1 + 100 * static_cast<std::uint64_t>(comm.rank()));
    const auto run = train::train_stage1(ranks, schedule, data, options(4, batch), train::SimpleObjective{}, {}, comm);
    check_losses(run, reference, 1e-12);
    const double difference = max_abs_difference(weights(ranks), weights(single));
    MESSAGE("dropout, stage 1, batch " << batch << ": max |w(2 ranks) - w(1 rank)| = " << difference);
    CHECK(difference <= kTolerance);
    CHECK(same_on_every_rank(comm, weights(ranks)));
    CHECK(dropout_state(ranks) == dropout_state(single));  // seeds and mask counts
    // the masks matter: the same run without dropout ends elsewhere
    auto plain = base_model(1);
    train::train_stage1(plain, schedule, data, options(4, batch));
    CHECK(max_abs_difference(weights(ranks), weights(plain)) > 1e3 * kTolerance);
  }
}

TEST_CASE("dropout 10%: stage 2 and multi-stage (groups gathered into sub-batches) on 2 ranks train as 1 rank") {
  distributed::MpiCommunicator comm;
  const Schedule schedule;
  SUBCASE("stage 2") {
    const auto data = patterns(12);
    const progdiff::group::Partition partition{{0, 40, 100}, {}};
    auto base_single = base_model<SmallNet<double, 10>>(3), base_ranks = base_model<SmallNet<double, 10>>(3);
    auto single = train::train_stage2(base_single, partition, schedule, data, options(3, 4), train::SimpleObjective{});
    auto grouped = train::train_stage2(base_ranks, partition, schedule, data, options(3, 4), train::SimpleObjective{},
                                       {}, nullptr, {}, comm);
    const double difference = max_abs_difference(weights(grouped), weights(single));
    MESSAGE("dropout, stage 2: max |w(2 ranks) - w(1 rank)| = " << difference);
    CHECK(difference <= kTolerance);
    CHECK(same_on_every_rank(comm, weights(grouped)));
    CHECK(dropout_state(grouped) == dropout_state(single));
  }
  SUBCASE("multi-stage") {
    // a rank whose rows hold no sample of a group skips that decoder while the other runs it:
    // its mask counts must follow (with batch 3, rank 1's one row is in one group only)
    const auto data = patterns(16);
    for (const auto& [batch, boundary] : {std::pair<std::int64_t, std::int64_t>{8, 60}, {3, 50}}) {
      CAPTURE(batch);
      const progdiff::group::Partition partition{{0, boundary, 100}, {}};
      auto single = multi_model<MultiNet<10>>(12, partition), ranks = multi_model<MultiNet<10>>(12, partition);
      const auto reference = train::train_multi_stage(single, schedule, data, options(6, batch));
      const auto run =
          train::train_multi_stage(ranks, schedule, data, options(6, batch), train::SimpleObjective{}, {}, comm);
      check_losses(run, reference, 1e-12);
      const double difference = max_abs_difference(weights(ranks), weights(single));
      MESSAGE("dropout, multi-stage, batch " << batch << ": max |w(2 ranks) - w(1 rank)| = " << difference);
      CHECK(difference <= kTolerance);
      CHECK(same_on_every_rank(comm, weights(ranks)));
      CHECK(dropout_state(ranks) == dropout_state(single));
      CHECK(same_on_every_rank(comm, dropout_state(ranks)));
    }
  }
}

}  // namespace progdiff_mpi_tests_equal_ranks

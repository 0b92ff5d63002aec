// Checkpoints across rank counts: rank 0 alone writes them, a checkpoint of a 2-rank run resumes
// in one process and one of a 1-rank run on 2 ranks (equal within the stated tolerance of
// mpi_equal_ranks_test.cpp), also with dropout, and on the same rank count a resumed run is bit
// for bit the uninterrupted one.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "mpi_support.hpp"
#include "progdiff/train/multi_stage.hpp"
#include "progdiff/train/stage1.hpp"

namespace progdiff_mpi_tests_resume {

using namespace mpi_test;

namespace {

constexpr double kTolerance = 1e-10;  // as mpi_equal_ranks_test.cpp, which says why

struct Stopped {};  // thrown from a step callback on every rank, as a job stopped after a step

train::TrainOptions checkpointed(const std::filesystem::path& path) {
  train::TrainOptions o = options(6, 4);
  o.checkpoint_every = 2;
  o.checkpoint_path = path;
  return o;
}

const auto stop_after_3 = [](const train::StepInfo& s) {
  if (s.step == 3) throw Stopped{};
};

}  // namespace

TEST_CASE("resume across rank counts: 2 ranks -> 1 rank, 1 rank -> 2 ranks, 2 ranks -> 2 ranks") {
  distributed::MpiCommunicator comm;
  REQUIRE(comm.size() == 2);
  const auto dir = shared_dir(comm, "resume");
  const auto data = patterns(12);
  const Schedule schedule;
  auto one = base_model(1), two = base_model(1);
  train::train_stage1(one, schedule, data, options(6, 4));  // uninterrupted, 1 rank (on each rank)
  train::train_stage1(two, schedule, data, options(6, 4), train::SimpleObjective{}, {}, comm);

  SUBCASE("2 ranks write at step 2, stop at 3; 1 rank resumes") {
    const auto path = dir / "from_two.safetensors";
    auto stopped = base_model(1);
    CHECK_THROWS_AS(
        train::train_stage1(stopped, schedule, data, checkpointed(path), train::SimpleObjective{}, stop_after_3, comm),
        Stopped);
    comm.barrier();
    std::size_t files = 0;  // the checkpoint alone: no rank left a temporary beside it
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
    CHECK(files == 1);
    if (comm.rank() == 0) {  // one process, no communicator: writes its own checkpoints
      auto resumed = base_model(99);
      const auto report = train::train_stage1(resumed, schedule, data, checkpointed(path));
      CHECK(report.first_step == 2);
      const double difference = max_abs_difference(weights(resumed), weights(one));
      MESSAGE("2 ranks -> 1 rank: max |w - w(1 rank uninterrupted)| = " << difference);
      CHECK(difference <= kTolerance);
    }
    comm.barrier();
  }
  SUBCASE("1 rank writes at step 2, stops at 3; 2 ranks resume") {
    const auto path = dir / "from_one.safetensors";
    if (comm.rank() == 0) {
      auto stopped = base_model(1);
      CHECK_THROWS_AS(train::train_stage1(stopped, schedule, data, checkpointed(path), stop_after_3), Stopped);
    }
    comm.barrier();
    auto resumed = base_model(99);
    const auto report =
        train::train_stage1(resumed, schedule, data, checkpointed(path), train::SimpleObjective{}, {}, comm);
    CHECK(report.first_step == 2);
    const double difference = max_abs_difference(weights(resumed), weights(two));
    MESSAGE("1 rank -> 2 ranks: max |w - w(2 ranks uninterrupted)| = " << difference);
    CHECK(difference <= kTolerance);
    CHECK(same_on_every_rank(comm, weights(resumed)));
  }
  SUBCASE("2 ranks stop and 2 ranks resume: bit for bit") {
    const auto path = dir / "two_two.safetensors";
    auto stopped = base_model(1);
    CHECK_THROWS_AS(
        train::train_stage1(stopped, schedule, data, checkpointed(path), train::SimpleObjective{}, stop_after_3, comm),
        Stopped);
    auto resumed = base_model(99);
    const auto report =
        train::train_stage1(resumed, schedule, data, checkpointed(path), train::SimpleObjective{}, {}, comm);
    CHECK(report.first_step == 2);
    CHECK(weights(resumed) == weights(two));
  }
}

TEST_CASE("dropout 10%, multi-stage: checkpoints resume across rank counts with the masks of one process") {
  // batch 3 on 2 ranks: rank 1's one row runs one decoder while rank 0 may run the other; the
  // mask counts in the checkpoint must still be one process's
  distributed::MpiCommunicator comm;
  const auto dir = shared_dir(comm, "resume_dropout");
  const auto data = patterns(16);
  const Schedule schedule;
  const progdiff::group::Partition partition{{0, 50, 100}, {}};
  using DropMulti = MultiNet<10>;
  auto one = multi_model<DropMulti>(12, partition);
  train::train_multi_stage(one, schedule, data, options(6, 3));  // uninterrupted, 1 rank (on each rank)
  train::TrainOptions o = options(6, 3);
  o.checkpoint_every = 2;

  SUBCASE("2 ranks write at step 2, stop at 3; 1 rank resumes") {
    o.checkpoint_path = dir / "from_two.safetensors";
    auto stopped = multi_model<DropMulti>(12, partition);
    CHECK_THROWS_AS(train::train_multi_stage(stopped, schedule, data, o, train::SimpleObjective{}, stop_after_3, comm),
                    Stopped);
    comm.barrier();
    if (comm.rank() == 0) {
      auto resumed = multi_model<DropMulti>(99, partition);  // other weights and dropout seeds
      const auto report = train::train_multi_stage(resumed, schedule, data, o);
      CHECK(report.first_step == 2);
      const double difference = max_abs_difference(weights(resumed), weights(one));
      MESSAGE("dropout, 2 ranks -> 1 rank: max |w - w(1 rank uninterrupted)| = " << difference);
      CHECK(difference <= kTolerance);
      CHECK(dropout_state(resumed) == dropout_state(one));
    }
    comm.barrier();
  }
  SUBCASE("1 rank writes at step 2, stops at 3; 2 ranks resume") {
    o.checkpoint_path = dir / "from_one.safetensors";
    if (comm.rank() == 0) {
      auto stopped = multi_model<DropMulti>(12, partition);
      CHECK_THROWS_AS(train::train_multi_stage(stopped, schedule, data, o, stop_after_3), Stopped);
    }
    comm.barrier();
    auto resumed = multi_model<DropMulti>(99, partition);
    const auto report = train::train_multi_stage(resumed, schedule, data, o, train::SimpleObjective{}, {}, comm);
    CHECK(report.first_step == 2);
    const double difference = max_abs_difference(weights(resumed), weights(one));
    MESSAGE("dropout, 1 rank -> 2 ranks: max |w - w(1 rank uninterrupted)| = " << difference);
    CHECK(difference <= kTolerance);
    CHECK(same_on_every_rank(comm, weights(resumed)));
    CHECK(dropout_state(resumed) == dropout_state(one));
  }
}

TEST_CASE("a checkpoint directory rank 0 cannot create stops every rank before the first step") {
  distributed::MpiCommunicator comm;
  const auto dir = shared_dir(comm, "unwritable");
  const auto blocker = dir / "a_file";
  if (comm.rank() == 0) std::ofstream(blocker) << "not a directory";
  comm.barrier();
  auto m = base_model(1);
  train::TrainOptions o = options(2, 4);
  o.checkpoint_path = blocker / "checkpoint.safetensors";  // its parent is a file
  bool stepped = false;
  CHECK_THROWS(train::train_stage1(
      m, Schedule{}, patterns(12), o, train::SimpleObjective{}, [&](const train::StepInfo&) { stepped = true; }, comm));
  CHECK(!stepped);
}

}  // namespace progdiff_mpi_tests_resume

// A 2-rank stage-1 run that tests/mpi/kill_restart.cmake starts several times:
//   mpi_kill_job <dir> run     train 6 steps (checkpoint every 2 in <dir>), resuming if there is one
//   mpi_kill_job <dir> kill    the same, but rank 1 kills itself (SIGKILL) after step 3
//   mpi_kill_job <dir> throw   the same, but rank 1 throws after step 3
//   mpi_kill_job <dir> hang    the same, but rank 1 sleeps after step 3, and the communicator
//                              gives up after 3 s without an answer
// At the end rank 0 writes the final weights' bytes to <dir>/weights.bin and prints the step it
// resumed from, for the script to compare with an uninterrupted run.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "mpi_support.hpp"
#include "progdiff/train/stage1.hpp"

using namespace mpi_test;

int main(int argc, char** argv) {
  distributed::MpiSession session(argc, argv);
  const std::string mode = argc == 3 ? argv[2] : "";
  distributed::MpiCommunicator comm(MPI_COMM_WORLD, mode == "hang" ? std::chrono::seconds(3) : std::chrono::seconds(0));
  return distributed::run_or_abort(comm, [&] {
    progdiff::require(mode == "run" || mode == "kill" || mode == "throw" || mode == "hang",
                      "usage: mpi_kill_job <dir> run|kill|throw|hang");
    const std::filesystem::path dir = argv[1];
    const auto data = patterns(12);
    const Schedule schedule;
    train::TrainOptions o = options(6, 4);
    o.checkpoint_every = 2;
    o.checkpoint_path = dir / "checkpoint.safetensors";
    auto m = base_model(1);
    const auto report = train::train_stage1(
        m, schedule, data, o, train::SimpleObjective{},
        [&](const train::StepInfo& s) {
          if (s.step != 3 || comm.rank() != 1) return;
          if (mode == "kill") std::raise(SIGKILL);
          if (mode == "throw") throw progdiff::Error("an injected failure after step 3");
          if (mode == "hang") std::this_thread::sleep_for(std::chrono::seconds(100));
        },
        comm);
    if (comm.rank() == 0) {
      std::printf("mpi_kill_job: resumed from step %lld, finished at step %lld\n",
                  static_cast<long long>(report.first_step), static_cast<long long>(o.steps));
      const auto w = weights(m);
      std::ofstream out(dir / "weights.bin", std::ios::binary);
      out.write(reinterpret_cast<const char*>(w.data()), static_cast<std::streamsize>(w.size() * sizeof(double)));
      progdiff::require<progdiff::IoError>(out.good(), "mpi_kill_job: cannot write " + (dir / "weights.bin").string());
    }
  });
}

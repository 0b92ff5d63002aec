// Training throughput of the data-parallel trainer: samples per second of stage-1 steps of a
// float32 U-Net at one global batch, for whatever ranks and threads it is started with. On one
// machine this measures the communicator's overhead (the ranks share the cores), not a speed-up:
//
//   OMP_NUM_THREADS=2 mpirun -np 1 --allow-run-as-root progdiff_distributed_throughput
//   OMP_NUM_THREADS=1 mpirun -np 2 --allow-run-as-root --oversubscribe progdiff_distributed_throughput
//
// Options: [steps (default 12)] [global batch (default 16)]. The first 2 steps are not timed.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "progdiff/core/random.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/distributed/mpi.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/unet/unet.hpp"

namespace pd = progdiff;
namespace unet = pd::unet;

using Net =
    unet::UNet<unet::Levels<1, 2, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
               unet::ImageChannels<1>, unet::BaseChannels<32>, unet::GroupNormGroups<8>, unet::DropoutPercent<0>>;
using Schedule = pd::schedule::Linear<1000>;

int main(int argc, char** argv) {
  pd::distributed::MpiSession session(argc, argv);
  pd::distributed::MpiCommunicator comm;
  return pd::distributed::run_or_abort(comm, [&] {
    const std::int64_t steps = argc > 1 ? std::atoll(argv[1]) : 12;
    const std::int64_t batch = argc > 2 ? std::atoll(argv[2]) : 16;
    pd::require(steps > 2 && batch >= comm.size(), "usage: progdiff_distributed_throughput [steps > 2] [batch]");
    pd::data::ImageDataset data;
    data.count = 256, data.channels = 1, data.height = 16, data.width = 16;
    pd::Generator pixels(3);
    for (std::int64_t i = 0; i < data.count * 256; ++i) data.pixels.push_back(pixels.uniform() * 2.0f - 1.0f);
    data.labels.assign(static_cast<std::size_t>(data.count), 0);
    pd::Generator gen(1);
    Net net;
    net.initialize(gen);
    pd::model::Progressive<Net> model(std::move(net), Schedule::steps);
    pd::train::TrainOptions o;
    o.steps = steps;
    o.batch_size = batch;
    o.progress.mode = pd::train::ProgressOptions::Mode::Off;
    std::chrono::steady_clock::time_point start;
    const auto report = pd::train::train_stage1(
        model, Schedule{}, data, o, pd::train::SimpleObjective{},
        [&](const pd::train::StepInfo& s) {
          if (s.step == 2) start = std::chrono::steady_clock::now();
        },
        comm);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (comm.rank() == 0)
      std::printf("%d rank(s) x %d thread(s): %.1f samples/s (global batch %lld, %lld timed steps, final loss %.4f)\n",
                  comm.size(), omp_get_max_threads(), static_cast<double>(batch * (steps - 2)) / seconds,
                  static_cast<long long>(batch), static_cast<long long>(steps - 2), report.steps.back().loss);
  });
}

#pragma once
// Shared by the MPI test programs: the small U-Nets and image patterns of trainer_test, training
// options, a scratch directory every rank sees, and comparisons of weights across runs and ranks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/distributed/communicator.hpp"
#include "progdiff/distributed/mpi.hpp"
#include "progdiff/model/interval_routed.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/trainer_options.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace mpi_test {

namespace unet = progdiff::unet;
namespace model = progdiff::model;
namespace train = progdiff::train;
namespace distributed = progdiff::distributed;

template <class E, int dropout = 0>
using SmallNet =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<dropout>, unet::ElementType<E>>;
using Net = SmallNet<double>;
template <int dropout = 0>
using MultiNet = unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                                        unet::ImageChannels<1>, unet::BaseChannels<8>, unet::GroupNormGroups<4>,
                                        unet::DropoutPercent<dropout>, unet::ElementType<double>, unet::Decoders<2>>;
using Multi = MultiNet<>;
using Schedule = progdiff::schedule::Linear<100>;

// Smooth 8x8 patterns in [-1, 1], one per image (as trainer_test's).
inline progdiff::data::ImageDataset patterns(std::int64_t count) {
  progdiff::data::ImageDataset d;
  d.count = count, d.channels = 1, d.height = 8, d.width = 8;
  for (std::int64_t i = 0; i < count; ++i) {
    d.labels.push_back(i % 3);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x)
        d.pixels.push_back(static_cast<float>(std::sin(0.7 * x + 0.3 * static_cast<double>(i)) * std::cos(0.5 * y)));
  }
  return d;
}

template <class N = Net>
model::Progressive<N> base_model(std::uint64_t seed) {
  progdiff::Generator gen(seed);
  N net;
  net.initialize(gen);
  return model::Progressive<N>(std::move(net), Schedule::steps);
}

template <class M = Multi>
model::IntervalRouted<M> multi_model(std::uint64_t seed, progdiff::group::Partition partition = {{0, 60, 100}, {}}) {
  progdiff::Generator gen(seed);
  M net(M::default_widths(8, {8, 4}), M::default_config());
  net.initialize(gen);
  return model::IntervalRouted<M>(std::move(net), std::move(partition));
}

// Flips on, the clip active, EMA kept: every part of a step that sees the whole batch.
inline train::TrainOptions options(std::int64_t steps, std::int64_t batch) {
  train::TrainOptions o;
  o.steps = steps;
  o.batch_size = batch;
  o.seed = 17;
  o.random_flip = true;
  o.lr.lr = 1e-3;
  o.clip_norm = 0.5;
  o.ema.decay = 0.9;
  o.progress.mode = train::ProgressOptions::Mode::Off;
  return o;
}

// <temp>/progdiff_mpi_test/<name>/, emptied by rank 0 before any rank uses it. A collective call.
inline std::filesystem::path shared_dir(distributed::MpiCommunicator& comm, const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "progdiff_mpi_test" / name;
  if (comm.rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  comm.barrier();
  return dir;
}

template <class M>
std::vector<double> weights(M&& m) {
  std::vector<double> w;
  m.visit_parameters(
      [&](const std::string&, auto& p) {
        for (auto v : p.value.to_host()) w.push_back(static_cast<double>(v));
      },
      std::string());
  return w;
}

// Each dropout layer's mask seed and count, in visiting order.
template <class M>
std::vector<double> dropout_state(M& m) {
  std::vector<double> s;
  m.visit_random_state(
      [&](const std::string&, auto& dropout) {
        s.push_back(static_cast<double>(dropout.config().seed));
        s.push_back(static_cast<double>(dropout.calls()));
      },
      std::string());
  return s;
}

inline double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// Whether every rank holds exactly rank 0's values (a collective call).
inline bool same_on_every_rank(distributed::MpiCommunicator& comm, const std::vector<double>& mine) {
  std::vector<double> rank0 = comm.rank() == 0 ? mine : std::vector<double>(mine.size(), 0.0);
  comm.all_reduce_host(rank0);  // rank 0's values plus zeros: exactly rank 0's
  return !distributed::any_rank(comm, rank0 != mine);
}

}  // namespace mpi_test

#pragma once
// What the TDC tests share: a small U-Net on 8x8 images, its base model, smooth image patterns,
// three FLOPs-interval groups and the groups' memory banks as text.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/group/flops_interval.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/options.hpp"
#include "progdiff/unet/unet.hpp"

namespace tdc_test {

using Net = progdiff::unet::UNet<progdiff::unet::Levels<1, 2>, progdiff::unet::ResBlocks<1>,
                                 progdiff::unet::AttentionAt<>, progdiff::unet::ImageSize<8>,
                                 progdiff::unet::ImageChannels<1>, progdiff::unet::BaseChannels<8>,
                                 progdiff::unet::GroupNormGroups<4>, progdiff::unet::DropoutPercent<0>>;
using Schedule = progdiff::schedule::Linear<60>;

/// Smooth 8x8 patterns in [-1, 1] whose phase depends on `phase` and the image index; label
/// i for image i when `index_labels`, else 0.
inline progdiff::data::ImageDataset patterns(std::int64_t count, double phase, bool index_labels = false) {
  progdiff::data::ImageDataset d;
  d.count = count, d.channels = 1, d.height = 8, d.width = 8;
  for (std::int64_t i = 0; i < count; ++i) {
    d.labels.push_back(index_labels ? i : 0);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x)
        d.pixels.push_back(
            static_cast<float>(std::sin(0.7 * x + 0.3 * static_cast<double>(i) + phase) * std::cos(0.5 * y)));
  }
  return d;
}

/// A base of one group, its weights from seed 5; N and S default to the tests' net and schedule.
template <class N = Net, class S = Schedule>
progdiff::model::Progressive<N> base_model() {
  progdiff::Generator gen(5);
  N net;
  net.initialize(gen);
  return progdiff::model::Progressive<N>(std::move(net), S::steps);
}

/// Three groups by FLOPs intervals of eq. 8 with k = 0.4: budgets 0.6, 0.8 and 1 of the base.
template <class S = Schedule>
progdiff::group::Partition three_groups() {
  return progdiff::group::FlopsIntervalGrouper<progdiff::difficulty::SnrFlops>{3, {0.4}}.group(S{});
}

/// The search at its smallest (two importance batches of 4, two proxy rounds of two schemes,
/// 8 evaluation samples), fine-tuning `finetune_steps` steps of batch 4, quietly, into `dir`.
inline progdiff::tdc::TdcOptions small_options(const std::filesystem::path& dir, progdiff::tdc::TdcPruning pruning,
                                               std::int64_t finetune_steps) {
  progdiff::tdc::TdcOptions o;
  o.out_dir = dir;
  o.pruning = pruning;
  o.seed = 3;
  o.importance_batches = 2;
  o.importance_batch_size = 4;
  o.proxy_rounds = 2;
  o.proxy_candidates = 2;
  o.eval_samples = 8;
  o.eval_batch_size = 4;
  o.finetune.steps = finetune_steps;
  o.finetune.batch_size = 4;
  o.finetune.progress.mode = progdiff::train::ProgressOptions::Mode::Off;
  return o;
}

/// The bytes of the file at `p`; fails the test if it cannot be read.
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Every group's memory bank under a TDC out_dir: the schemes the selection evaluated, their
/// losses, its choice.
inline std::vector<std::string> banks(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (int g = 0; g < 3; ++g) out.push_back(read_text(dir / ("group" + std::to_string(g)) / "memory_bank.json"));
  return out;
}

}  // namespace tdc_test

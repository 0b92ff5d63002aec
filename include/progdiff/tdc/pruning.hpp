#pragma once
// prune_for_group: the sub-network of one timestep group, U(i) = U_base - theta'(i) of eq. 12
// (Step-Adaptive Training), within the group's FLOPs limit FLOPs_g(i) of eq. 9:
//
//   * Random, Magnitude, Taylor, Diff-Pruning, or any criterion of tdc/importance.hpp: the
//     channels of every dependency group are scored by the criterion (Taylor and Diff-Pruning on
//     batches of the group's own timesteps, from the training data) and
//     prune::prune_to_flops removes the globally least important ones until the limit holds;
//     the result is recorded in the group's memory bank as one entry named after the criterion.
//   * Proxy: prune::proxy_prune over the U-Net's search space, the proxy being the built-in
//     prune::SearchProxy or any other (TdcOptions::make_proxy), each scheme scored by the
//     validation loss of the base pruned to it
//     (eq. 17), channels within a layer chosen by magnitude; the memory bank is the group's file,
//     so an interrupted search resumes where it stopped.
//   * None, or a limit at or above the base's FLOPs: a copy of the base (recorded as "unpruned").
//
// The base's parameter gradients are zero afterwards.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/prune/any_proxy.hpp"
#include "progdiff/prune/importance_magnitude.hpp"
#include "progdiff/prune/memory_bank.hpp"
#include "progdiff/prune/proxy_pruning.hpp"
#include "progdiff/prune/prune_to_flops.hpp"
#include "progdiff/prune/search_proxy.hpp"
#include "progdiff/prune/unet_search_space.hpp"
#include "progdiff/tdc/group_loss.hpp"
#include "progdiff/tdc/importance.hpp"
#include "progdiff/tdc/options.hpp"

namespace progdiff::tdc {

/// Philox streams of the pipeline's draws, apart from the trainer's and the metrics'.
inline constexpr std::uint64_t kTdcImportanceStream = std::uint64_t{0x54444349} << 32;  // "TDCI"
inline constexpr std::uint64_t kTdcHeldOutStream = std::uint64_t{0x54444348} << 32;     // "TDCH"

/// One group's timesteps and limit, and the data its criterion reads. `Noising` makes the
/// criterion's batches as the held-out set's are made (tdc/group_loss.hpp: ScheduleNoising, or
/// EdmNoising for the inner network of an EDM base).
template <class T, class B, class Noising>
struct GroupPruningTask {
  Noising noising;
  std::int64_t group = 0;
  std::int64_t begin = 0, end = 0;  // the group's timesteps [begin, end)
  double flops_limit = 0.0;         // per sample
  Shape image;                      // [1, C, H, W]
  const data::ImageDataset& train_data;
  const GroupBatches<T, B>& held_out;
  std::filesystem::path bank_path;  // the group's memory bank
};

template <class Net>
struct GroupPruningResult {
  Net net;
  std::int64_t evaluations = 0;  // schemes the proxy evaluated in this call
};

namespace detail {

template <class Net>
Net copy_of(Net& net, std::uint64_t seed) {
  Generator gen(seed, 0x54444343u);  // "TDCC": dropout seeds of the copy
  return model::clone_net(net, gen);
}

template <class Net>
void zero_gradients(Net& net) {
  net.visit_parameters([](const std::string&, auto& p) { p.zero_grad(); }, std::string());
}

// The scheme over `space` of full group widths `w`, or an empty scheme when it is not one.
inline prune::Scheme scheme_of(const prune::ChannelGroups& groups, const prune::SearchSpace& space,
                               const std::vector<std::int64_t>& w) {
  prune::Scheme s;
  for (const auto& layer : space.layers) s.widths.push_back(w[groups.index_of(layer.name)]);
  return prune::is_valid_scheme(space, s) ? s : prune::Scheme{};
}

}  // namespace detail

/// The pruned denoiser of one group (see the top of this file).
/// `criterion` scores the channels when `pruning` is neither None nor Proxy.
template <class Net, class T, class B, class Noising>
GroupPruningResult<Net> prune_for_group(Net& base, TdcPruning pruning, AnyImportance<Net>& criterion,
                                        const GroupPruningTask<T, B, Noising>& task, const TdcOptions& o) {
  const double base_flops = static_cast<double>(base.flops(task.image));
  require(task.flops_limit > 0.0, "TDC: group " + std::to_string(task.group) + " has FLOPs limit " +
                                      std::to_string(task.flops_limit) + ", it must be positive");
  std::vector<std::int64_t> timesteps;
  for (std::int64_t t = task.begin; t < task.end; ++t) timesteps.push_back(t);
  const prune::ChannelGroups groups = prune::channel_groups(base);
  const prune::SearchSpace space = prune::unet_search_space(base, task.flops_limit, timesteps);
  // Rank 0 of a shared search owns the bank's file; the other ranks start from its contents (read
  // before the first round, when rank 0 has written nothing yet) and keep the rest in memory.
  prune::MemoryBank bank = o.proxy_sharing.rank == 0                 ? prune::MemoryBank::open(task.bank_path, space)
                           : std::filesystem::exists(task.bank_path) ? prune::MemoryBank::load(task.bank_path, space)
                                                                     : prune::MemoryBank();
  // Records the scheme of full group widths `w` (when it is one of the space) with its held-out loss.
  auto record = [&](Net& net, const std::vector<std::int64_t>& w, double flops, const std::string& source) {
    const prune::Scheme scheme = detail::scheme_of(groups, space, w);
    if (!scheme.widths.empty() && !bank.contains(scheme))
      bank.add(prune::MemoryEntry{scheme, task.held_out.loss(net), flops, 0, source}, space);
  };

  if (pruning == TdcPruning::None || task.flops_limit >= base_flops) {
    Net copy = detail::copy_of(base, o.seed + static_cast<std::uint64_t>(task.group));
    record(copy, groups.widths(), groups.flops(), "unpruned");
    return {std::move(copy), 0};
  }

  if (pruning == TdcPruning::Proxy) {
    const prune::ChannelScores magnitude = prune::MagnitudeImportance{o.magnitude_norm}.scores(base, groups);
    prune::SearchProxyOptions po;
    po.seed = o.seed ^ (0xd1b54a32d192ed03ull * static_cast<std::uint64_t>(task.group + 1));
    prune::AnyPruningProxy proxy = o.make_proxy ? o.make_proxy(task.group, po.seed) : prune::SearchProxy(po);
    require(static_cast<bool>(proxy),
            "TDC: options.make_proxy returned no proxy for group " + std::to_string(task.group));
    auto evaluate = [&](const prune::Scheme& scheme) {
      Net candidate = prune::apply_scheme(base, space, scheme, magnitude);
      return task.held_out.loss(candidate);
    };
    const prune::ProxyPruningResult r = prune::proxy_prune(space, proxy, evaluate, o.proxy_rounds, o.proxy_candidates,
                                                           bank, o.proxy_name, o.proxy_sharing);
    return {prune::apply_scheme(base, space, r.best, magnitude), static_cast<std::int64_t>(r.evaluated)};
  }

  require(o.importance_batches >= 1 && o.importance_batch_size >= 1,
          "TDC: importance_batches and importance_batch_size must be >= 1");
  const std::uint64_t stream = kTdcImportanceStream + static_cast<std::uint64_t>(task.group) * 4;
  ImportanceProbe<Net> probe{base,
                             groups,
                             task.group,
                             task.begin,
                             task.end,
                             stream,
                             o,
                             [&](std::int64_t index, const std::vector<std::int64_t>& ts, std::uint64_t offset) {
                               return GroupBatches<T, B>::at_timesteps(task.noising, task.train_data,
                                                                       index * o.importance_batch_size, ts, o.seed,
                                                                       stream + offset)
                                   .loss_and_gradients(base);
                             }};
  const prune::ChannelScores scores = criterion.scores(probe);
  detail::zero_gradients(base);
  const prune::FlopsPlan plan = prune::plan_widths_for_flops(groups, scores, task.flops_limit);
  Net pruned = prune::prune_unet(base, scores, std::span<const std::int64_t>(plan.widths));
  record(pruned, plan.widths, plan.flops, criterion.name());
  return {std::move(pruned), 0};
}

}  // namespace progdiff::tdc

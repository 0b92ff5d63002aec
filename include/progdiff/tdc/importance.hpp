#pragma once
// The importance criteria of TDC pruning as an open interface: a criterion is any type with
//
//   prune::ChannelScores scores(tdc::ImportanceProbe<Net>& probe);
//
// The probe hands it the base, its channel groups, the group's timesteps and a way to fill the
// base's gradients at chosen timesteps on training images; the pipeline then prunes globally to
// the group's FLOPs limit by the scores (prune::prune_to_flops). AnyImportance<Net> holds any
// criterion with a name (which tdc.json and the memory bank record), so a new criterion plugs
// into run_tdc without a new enum value:
//
//   struct Mine { prune::ChannelScores scores(tdc::ImportanceProbe<Net>& p) { ... } };
//   tdc::run_tdc(base, partition, schedule, train, validation, options, tdc::AnyImportance<Net>("mine", Mine{}));
//
// The built-in criteria of TdcPruning (random, magnitude, Taylor, Diff-Pruning) are criteria of
// this kind too (builtin_importance).
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/prune/channel_groups.hpp"
#include "progdiff/prune/importance.hpp"
#include "progdiff/prune/importance_diff_pruning.hpp"
#include "progdiff/prune/importance_magnitude.hpp"
#include "progdiff/prune/importance_random.hpp"
#include "progdiff/prune/importance_taylor.hpp"
#include "progdiff/tdc/options.hpp"

namespace progdiff::tdc {

/// What a criterion sees of one timestep group.
template <class Net>
struct ImportanceProbe {
  Net& net;  // the base; its parameter gradients are zeroed after the criterion ran
  const prune::ChannelGroups& groups;
  std::int64_t group = 0;
  std::int64_t begin = 0, end = 0;  // the group's timesteps [begin, end)
  std::uint64_t stream = 0;         // the group's own Philox stream (draws keyed by TdcOptions::seed and it)
  const TdcOptions& options;        // seed, importance_batches, importance_batch_size, ...
  /// Zeroes, then fills the base's parameter gradients with those of the mean loss of batch
  /// `index` of training images (importance_batch_size of them; the batches follow one another
  /// through the training data) at `timesteps`, one per image; returns that loss. The noise is
  /// keyed by (options.seed, stream + offset, image), so asking twice gives the same batch.
  std::function<double(std::int64_t index, const std::vector<std::int64_t>& timesteps, std::uint64_t offset)>
      gradients_at;
};

/// A type whose scores(ImportanceProbe<Net>&) returns one score per channel of every group.
template <class C, class Net>
concept ImportanceCriterion = requires(C& criterion, ImportanceProbe<Net>& probe) {
  { criterion.scores(probe) } -> std::convertible_to<prune::ChannelScores>;
};

/// Any importance criterion for Net, with the name tdc.json and the memory bank record.
template <class Net>
class AnyImportance {
 public:
  AnyImportance() = default;
  template <class C>
  AnyImportance(std::string name, C criterion) : name_(std::move(name)) {
    static_assert(ImportanceCriterion<C, Net>,
                  "progdiff::tdc: an importance criterion needs a member "
                  "`prune::ChannelScores scores(tdc::ImportanceProbe<Net>& probe)` (see tdc/importance.hpp)");
    require(!name_.empty(), "AnyImportance: the criterion needs a name");
    if constexpr (ImportanceCriterion<C, Net>)
      scores_ = [c = std::move(criterion)](ImportanceProbe<Net>& p) mutable {
        return prune::ChannelScores(c.scores(p));
      };
  }
  explicit operator bool() const { return static_cast<bool>(scores_); }
  const std::string& name() const { return name_; }
  /// The criterion's scores, checked to hold one finite score per channel of every group.
  prune::ChannelScores scores(ImportanceProbe<Net>& probe) {
    require(static_cast<bool>(scores_), "AnyImportance: no criterion set");
    prune::ChannelScores s = scores_(probe);
    prune::expect_scores_fit(s, probe.groups, "TDC criterion '" + name_ + "', group " + std::to_string(probe.group));
    return s;
  }

 private:
  std::string name_;
  std::function<prune::ChannelScores(ImportanceProbe<Net>&)> scores_;
};

/// Random channel scores, seeded per group.
struct RandomCriterion {
  template <class Net>
  prune::ChannelScores scores(ImportanceProbe<Net>& p) {
    return prune::RandomImportance{p.options.seed ^ (0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(p.group + 1))}
        .scores(p.net, p.groups);
  }
};

/// The L1 / L2 norm of each channel's weights (TdcOptions::magnitude_norm).
struct MagnitudeCriterion {
  template <class Net>
  prune::ChannelScores scores(ImportanceProbe<Net>& p) {
    return prune::MagnitudeImportance{p.options.magnitude_norm}.scores(p.net, p.groups);
  }
};

/// |w dL/dw| summed over importance_batches batches of random timesteps of the group.
struct TaylorCriterion {
  template <class Net>
  prune::ChannelScores scores(ImportanceProbe<Net>& p) {
    prune::TaylorImportance taylor;
    Generator pick(p.options.seed, p.stream);
    for (std::int64_t b = 0; b < p.options.importance_batches; ++b) {
      std::vector<std::int64_t> ts;
      for (std::int64_t i = 0; i < p.options.importance_batch_size; ++i)
        ts.push_back(p.begin + static_cast<std::int64_t>(pick.below(static_cast<std::uint64_t>(p.end - p.begin))));
      p.gradients_at(b, ts, 1);
      taylor.observe(p.net, p.groups);
    }
    return taylor.scores(p.net, p.groups);
  }
};

/// |w sum_t dL_t/dw| over importance_batches timesteps of the group, evenly spaced and visited
/// from the least noisy; steps whose loss is below diff_pruning_threshold of the largest are
/// skipped (Fang et al. 2023).
struct DiffPruningCriterion {
  template <class Net>
  prune::ChannelScores scores(ImportanceProbe<Net>& p) {
    prune::DiffPruningImportance diff(p.options.diff_pruning_threshold);
    const std::int64_t span = p.end - p.begin;
    const std::int64_t steps = std::min(p.options.importance_batches, span);
    for (std::int64_t k = 0; k < steps; ++k) {
      const std::int64_t t = p.begin + (steps == 1 ? 0 : k * (span - 1) / (steps - 1));
      const double loss =
          p.gradients_at(k, std::vector<std::int64_t>(static_cast<std::size_t>(p.options.importance_batch_size), t), 2);
      diff.observe(p.net, loss);
    }
    return diff.scores(p.net, p.groups);
  }
};

/// The criterion of a TdcPruning score value; ConfigError for None and Proxy, which are not.
template <class Net>
AnyImportance<Net> builtin_importance(TdcPruning pruning) {
  switch (pruning) {
    case TdcPruning::Random:
      return {tdc_pruning_name(pruning), RandomCriterion{}};
    case TdcPruning::Magnitude:
      return {tdc_pruning_name(pruning), MagnitudeCriterion{}};
    case TdcPruning::Taylor:
      return {tdc_pruning_name(pruning), TaylorCriterion{}};
    case TdcPruning::DiffPruning:
      return {tdc_pruning_name(pruning), DiffPruningCriterion{}};
    default:
      break;
  }
  throw ConfigError(std::string("TDC: '") + tdc_pruning_name(pruning) + "' is not an importance criterion");
}

}  // namespace progdiff::tdc

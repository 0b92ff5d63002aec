#pragma once
// The settings and the report of the TDC pipeline (tdc/pipeline.hpp): which criterion
// prunes each group of a progressive model (Step-Adaptive Training, eqs. 12-17 and Tables 4 and
// 6), how the held-out loss that the proxy minimises is measured, and how each pruned group is
// fine-tuned (eq. 13).
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/prune/any_proxy.hpp"
#include "progdiff/prune/evaluation_sharing.hpp"
#include "progdiff/prune/importance_magnitude.hpp"
#include "progdiff/train/trainer_options.hpp"

namespace progdiff::tdc {

/// How a group's sub-network is chosen from the base (Table 4's rows).
enum class TdcPruning {
  None,         // no pruning: every group fine-tunes a full copy of the base (Table 2)
  Random,       // prune_to_flops with random channel scores
  Magnitude,    // ... with the L1 / L2 norm of each channel's weights (Li et al. 2017)
  Taylor,       // ... with |w dL/dw| over batches of the group's timesteps (Molchanov et al. 2019)
  DiffPruning,  // ... with |w sum_t dL_t/dw| over the group's timesteps, ascending (Fang et al. 2023)
  Proxy,        // per-layer widths by proxy_prune (eqs. 16-17) over the held-out loss; channels by magnitude
};

/// The command-line name of every criterion, one row each; the count check below fails to compile
/// when a criterion is added to the enum without a name here.
inline constexpr std::array<std::pair<TdcPruning, const char*>, 6> kTdcPruningNames{{
    {TdcPruning::None, "none"},
    {TdcPruning::Random, "random"},
    {TdcPruning::Magnitude, "magnitude"},
    {TdcPruning::Taylor, "taylor"},
    {TdcPruning::DiffPruning, "diff-pruning"},
    {TdcPruning::Proxy, "proxy"},
}};
static_assert(kTdcPruningNames.size() == static_cast<std::size_t>(TdcPruning::Proxy) + 1,
              "kTdcPruningNames needs one row per TdcPruning value (Proxy is the last)");

inline const char* tdc_pruning_name(TdcPruning p) {
  for (const auto& [value, name] : kTdcPruningNames)
    if (value == p) return name;
  return "?";
}

/// The criterion called `name` (as tdc_pruning_name writes it); ConfigError listing the names otherwise.
inline TdcPruning parse_tdc_pruning(const std::string& name) {
  std::string names;
  for (const auto& [value, n] : kTdcPruningNames) {
    if (name == n) return value;
    names += (names.empty() ? "" : ", ") + std::string(n);
  }
  throw ConfigError("TDC: unknown pruning criterion '" + name + "' (" + names + ")");
}

/// The proxy of group `group` (eq. 16), given the seed the pipeline derives for that group.
using TdcProxyFactory = std::function<prune::AnyPruningProxy(std::int64_t group, std::uint64_t seed)>;

struct TdcOptions {
  std::filesystem::path out_dir;           // group<g>/ per group, and tdc.json
  TdcPruning pruning = TdcPruning::Proxy;  // the criterion of every group
  std::int64_t only_group = -1;            // >= 0: prune and fine-tune this group only, and assemble nothing
  bool assemble = true;                    // with only_group < 0: build the progressive model from the groups
  std::uint64_t seed = 0;                  // random scores, importance batches, held-out draws, proxy search

  // Importance estimation (Taylor: batches of random group timesteps; Diff-Pruning: that many
  // group timesteps, evenly spaced and visited from the least noisy).
  std::int64_t importance_batches = 8;
  std::int64_t importance_batch_size = 16;
  double diff_pruning_threshold = 0.1;  // Diff-Pruning skips steps whose loss is below this share of the largest
  prune::Norm magnitude_norm = prune::Norm::l2;

  // The proxy search: rounds R and schemes per round (the paper's Fig. 7: 5 rounds of 3).
  std::int64_t proxy_rounds = 5;
  std::size_t proxy_candidates = 3;
  // Any prune::PruningProxy, made per group (an ExternalProxy, a user's type); empty: the
  // built-in prune::SearchProxy. proxy_name tags the memory bank's entries and tdc.json, so a
  // rerun with another proxy is refused rather than mixed into the same banks.
  TdcProxyFactory make_proxy;
  std::string proxy_name = "search";
  // Several processes share each round's evaluations of one group's proxy search
  // (prune/evaluation_sharing.hpp; tdc/fan_out.hpp sets it). Rank 0 alone asks the proxy and
  // writes the group's files; the other ranks read the memory bank and keep their additions in
  // memory. The default: one process evaluates every scheme.
  prune::EvaluationSharing proxy_sharing{};
  // Stop each group after pruning (its pruned denoiser saved, nothing fine-tuned or marked done);
  // a later run fine-tunes from the saved denoiser.
  bool prune_only = false;

  // The held-out loss that selects among pruning schemes: the first eval_samples images of the
  // validation data, each at a timestep of the group, noise and timestep fixed by (seed, group,
  // image). The validation data is carved from the training split, never the test split (which
  // must be kept for the final numbers): run_tdc without validation data takes the last
  // validation_images training images and trains on the others (tdc/validation.hpp).
  std::int64_t validation_images = 5000;
  std::int64_t eval_samples = 64;
  std::int64_t eval_batch_size = 64;

  // Fine-tuning of each pruned group (eq. 13). The pipeline sets checkpoint_path, csv_path and
  // plot_path per group and derives each group's seed from finetune.seed and the group index;
  // finetune.make_sampler, if set, is called with the group's own range [begin, end).
  train::TrainOptions finetune{};
  bool use_ema_weights = true;  // the assembled groups take their EMA weights (when finetune.use_ema)
};

/// What the pipeline did for one group.
struct TdcGroupReport {
  std::int64_t group = 0;
  std::int64_t begin = 0, end = 0;  // the group's timesteps [begin, end)
  double budget = 1.0;              // FLOPs budget as a fraction of the base (the partition's)
  double flops_limit = 0.0;         // budget * base FLOPs per sample
  std::int64_t flops = 0;           // FLOPs per sample of the pruned group's denoiser
  std::int64_t parameters = 0;
  double pruned_loss = 0.0;            // held-out loss right after pruning (NaN when this run did not prune)
  double finetuned_loss = 0.0;         // held-out loss after fine-tuning (the weights the model takes)
  std::int64_t proxy_evaluations = 0;  // schemes the proxy search evaluated in this run
  double prune_seconds = 0.0, finetune_seconds = 0.0;  // this run's wall time
  bool reused = false;                                 // the group was already finished (done marker) and only loaded
};

/// The report of a whole pipeline run.
struct TdcReport {
  std::vector<TdcGroupReport> groups;  // the groups this run handled (all, or only_group)
  std::int64_t base_flops = 0;         // FLOPs per sample of the base
  std::int64_t base_parameters = 0;
  double average_flops = 0.0;  // sum_g |group g| / T * flops_g over the groups of the partition (0 if not assembled)
  std::int64_t total_parameters = 0;  // of every group's denoiser (0 if not assembled)
};

}  // namespace progdiff::tdc

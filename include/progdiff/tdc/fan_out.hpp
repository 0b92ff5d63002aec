#pragma once
// TDC stage 2 spread over ranks. Each timestep group is pruned and fine-tuned independently of
// the others (tdc/pipeline.hpp: every seed derives from the group index, and groups
// exchange no gradients), so the papers' per-group work fans out without communication: group g
// runs on rank g % size, in one process (its own single-process trainer), and once every rank
// has finished its groups, every rank assembles the progressive model from the groups' files
// exactly as a single run_tdc would have built it.
//
//   auto result = tdc::run_tdc_over_ranks(comm, base, partition, schedule, train, validation, options);
//   // an IDDPM base (learned variance): ..., options, {}, TdcFanOut::Groups, train::HybridObjective{})
//
// With TdcFanOut::ProxyEvaluationsToo and proxy pruning, every rank first takes part in every
// group's proxy search, group after group, evaluating its share of each round's schemes
// (prune/evaluation_sharing.hpp); rank 0 saves each pruned denoiser, and the fine-tuning then fans
// out by group as above. More ranks than groups then all work, and the model is the same.
//
// options.out_dir must be on a file system every rank sees. A group that fails stops every
// rank after the others finished their own groups; a rerun skips the groups already done.
#include <exception>
#include <string>
#include <utility>

#include "progdiff/core/error.hpp"
#include "progdiff/distributed/communicator.hpp"
#include "progdiff/distributed/proxy_fan_out.hpp"
#include "progdiff/tdc/pipeline.hpp"

namespace progdiff::tdc {

/// What run_tdc_over_ranks spreads over the ranks.
enum class TdcFanOut {
  Groups,               // each group's pruning and fine-tuning on one rank
  ProxyEvaluationsToo,  // also every group's proxy search over all ranks first (proxy pruning)
};

/// run_tdc with group g pruned and fine-tuned on rank g % comm.size(); returns the assembled
/// model and every group's report on every rank. A collective call. `objective` fine-tunes every
/// group (train::HybridObjective for a base with a learned variance; tdc/pipeline.hpp).
template <distributed::Communicator C, class Net, schedule::NoiseSchedule Schedule,
          train::ObjectiveFor<model::Progressive<Net>> Objective = train::SimpleObjective>
TdcResult<Net> run_tdc_over_ranks(C& comm, model::Progressive<Net>& base, const group::Partition& partition,
                                  const Schedule& schedule, const data::ImageDataset& train_data,
                                  const data::ImageDataset& validation_data, const TdcOptions& options,
                                  TdcStepCallback on_step = {}, TdcFanOut fan_out = TdcFanOut::Groups,
                                  Objective objective = {}) {
  require(options.only_group < 0, "run_tdc_over_ranks: options.only_group is " + std::to_string(options.only_group) +
                                      "; the ranks choose their groups here, leave it -1");
  require(!options.prune_only && !options.proxy_sharing.shared(),
          "run_tdc_over_ranks: options.prune_only and options.proxy_sharing are set here, leave them unset");
  std::exception_ptr failure;
  try {
    if (fan_out == TdcFanOut::ProxyEvaluationsToo && options.pruning == TdcPruning::Proxy)
      for (std::int64_t g = 0; g < partition.groups(); ++g) {
        TdcOptions search = options;  // every rank in group g's search; the files are rank 0's
        search.only_group = g;
        search.prune_only = true;
        search.proxy_sharing = distributed::share_evaluations(comm);
        run_tdc(base, partition, schedule, train_data, validation_data, search, objective);
      }
  } catch (...) {
    failure = std::current_exception();
  }
  // every pruned denoiser is on disk before any rank looks for its groups' files
  if (distributed::any_rank(comm, failure != nullptr)) {
    if (failure) std::rethrow_exception(failure);
    throw distributed::CommunicationError("run_tdc_over_ranks: another rank failed in a TDC group's proxy search in " +
                                          options.out_dir.string() + " (its error output says which)");
  }
  try {
    for (std::int64_t g = comm.rank(); g < partition.groups(); g += comm.size()) {
      TdcOptions mine = options;
      mine.only_group = g;
      run_tdc(base, partition, schedule, train_data, validation_data, mine, objective, on_step);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (distributed::any_rank(comm, failure != nullptr)) {
    if (failure) std::rethrow_exception(failure);
    throw distributed::CommunicationError("run_tdc_over_ranks: another rank failed one of its TDC groups in " +
                                          options.out_dir.string() + " (its error output says which); rank " +
                                          std::to_string(comm.rank()) + "'s groups are done and a rerun skips them");
  }
  // every group is done: this only reads the groups' files and assembles
  return run_tdc(base, partition, schedule, train_data, validation_data, options, std::move(objective),
                 std::move(on_step));
}

}  // namespace progdiff::tdc

#pragma once
// proxy_prune(): Proxy-based Pruning, eqs. 14-17 of Step-Adaptive Training (eqs. 9-12 of TDC
// Training; Algorithm 1, lines 9-12), independent of the model:
//
//   for each round r < R:
//     schemes = proxy.propose({space, M, r, R, K})       eq. 16: theta' = Proxy(theta, T, D, S, M)
//     every scheme is validated (all before any is evaluated)
//     for each scheme not yet in M:
//       M = M u {(scheme, evaluate(scheme))}             eq. 17
//   return the scheme of M with the lowest loss within the FLOPs limit     eq. 14
//
// `evaluate` applies a scheme to the model and returns its loss on held-out batches of the
// group's timesteps; it is the only part that knows the model.
//
// Shared among processes (EvaluationSharing, evaluation_sharing.hpp): rank 0 asks the proxy and
// hands the proposals on, each rank evaluates its share of a round's new schemes, and every rank
// adds all the losses to its bank in the same order, ending with a single process's bank and best
// scheme. Bind the bank to a file on rank 0 only (the others keep theirs in memory), or give
// every rank its own file.
//
// Resumable: the memory bank records each round's proposals before they are evaluated and each
// evaluation as it completes; with a bank bound to a file (MemoryBank::open) an interrupted run
// restarts where it stopped: finished rounds are not proposed again, a round in progress goes on
// with its recorded proposals, and schemes already in the bank are never evaluated twice.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/prune/evaluation_sharing.hpp"
#include "progdiff/prune/memory_bank.hpp"
#include "progdiff/prune/proxy.hpp"
#include "progdiff/prune/scheme.hpp"
#include "progdiff/prune/search_space.hpp"

namespace progdiff::prune {

/// A callable scheme -> loss (any arithmetic type), the loss of the pruned model on the group's timesteps.
template <class F>
concept SchemeEvaluator = std::is_invocable_v<F&, const Scheme&> &&
    std::is_arithmetic_v<std::remove_cvref_t<std::invoke_result_t<F&, const Scheme&>>>;

struct ProxyPruningResult {
  Scheme best;  // lowest loss within the FLOPs limit, over the whole bank
  double loss = 0.0;
  double flops = 0.0;
  std::size_t evaluated = 0;  // schemes evaluated by this call (this process's share when shared)
  std::size_t skipped = 0;    // proposals skipped: already in the bank, or recorded under another FLOPs limit
};

/// Runs the proxy rounds up to `rounds` in total (counting rounds the bank already completed),
/// asking for `candidates_per_round` schemes each round. A proposal that is not a valid scheme is
/// a ConfigError naming the round and the candidate, raised before any scheme of that round is
/// evaluated. ConfigError if the bank ends without any finite loss within the FLOPs limit.
template <class Proxy, class Evaluate>
ProxyPruningResult proxy_prune(const SearchSpace& space, Proxy& proxy, Evaluate&& evaluate, std::int64_t rounds,
                               std::size_t candidates_per_round, MemoryBank& bank, std::string source = "proxy",
                               const EvaluationSharing& sharing = {});

namespace detail {

/// Rank 0's proposals on every rank: their count, then their widths, summed over the processes
/// with zeros from every other rank. A count of -1 says rank 0's proxy failed (`failed` there).
inline std::vector<Scheme> proposals_of_rank0(const EvaluationSharing& sharing, std::vector<Scheme> mine,
                                              std::size_t layers, bool failed) {
  double count[1] = {sharing.rank != 0 ? 0.0 : failed ? -1.0 : static_cast<double>(mine.size())};
  sharing.sum_over_processes(count);
  if (count[0] < 0.0) {
    if (failed) return {};  // rank 0 rethrows its own error
    throw ConfigError("proxy_prune: the proxy failed on rank 0 (its error output says why); rank " +
                      std::to_string(sharing.rank) + " stops too");
  }
  const std::size_t n = static_cast<std::size_t>(count[0]);
  std::vector<double> widths(n * layers, 0.0);
  if (sharing.rank == 0)
    for (std::size_t k = 0; k < n; ++k) {
      require(mine[k].widths.size() == layers, "proxy_prune: candidate " + std::to_string(k) + " has " +
                                                   std::to_string(mine[k].widths.size()) + " widths for " +
                                                   std::to_string(layers) + " layers");
      for (std::size_t i = 0; i < layers; ++i) widths[k * layers + i] = static_cast<double>(mine[k].widths[i]);
    }
  sharing.sum_over_processes(widths);
  std::vector<Scheme> proposals(n);
  for (std::size_t k = 0; k < n; ++k)
    for (std::size_t i = 0; i < layers; ++i)
      proposals[k].widths.push_back(static_cast<std::int64_t>(widths[k * layers + i]));
  return proposals;
}

template <class Proxy, class Evaluate>
ProxyPruningResult proxy_prune_checked(const SearchSpace& space, Proxy& proxy, Evaluate& evaluate, std::int64_t rounds,
                                       std::size_t candidates_per_round, MemoryBank& bank, const std::string& source,
                                       const EvaluationSharing& sharing) {
  space.validate();
  require(rounds >= 0, "proxy_prune: rounds " + std::to_string(rounds) + " must be >= 0");
  require(candidates_per_round >= 1, "proxy_prune: candidates_per_round must be at least 1");
  require(sharing.size >= 1 && sharing.rank >= 0 && sharing.rank < sharing.size &&
              (sharing.size == 1 || sharing.sum_over_processes),
          "proxy_prune: the evaluation sharing needs 0 <= rank < size and, for more than one process, a sum over "
          "them (rank " +
              std::to_string(sharing.rank) + ", size " + std::to_string(sharing.size) + ")");

  ProxyPruningResult result;
  for (std::int64_t round = bank.completed_rounds(); round < rounds; ++round) {
    if (bank.pending().empty()) {
      std::vector<Scheme> proposals;
      if (!sharing.shared()) {
        proposals = proxy.propose(ProxyRequest{space, bank, round, rounds, candidates_per_round});
      } else {
        // Rank 0 asks; a proxy that fails there stops every rank (a count of -1) instead of
        // leaving them waiting for proposals.
        std::exception_ptr failure;
        if (sharing.rank == 0) try {
            proposals = proxy.propose(ProxyRequest{space, bank, round, rounds, candidates_per_round});
          } catch (...) {
            failure = std::current_exception();
          }
        proposals = proposals_of_rank0(sharing, std::move(proposals), space.layers.size(), failure != nullptr);
        if (failure) std::rethrow_exception(failure);
      }
      for (std::size_t k = 0; k < proposals.size(); ++k) {
        try {
          validate_scheme(space, proposals[k]);
        } catch (const ConfigError& e) {
          throw ConfigError("proxy_prune: round " + std::to_string(round) + ", candidate " + std::to_string(k) +
                            " rejected, no scheme of this round evaluated: " + e.what());
        }
      }
      bank.begin_round(round, std::move(proposals), space);
    }
    // The schemes to evaluate: new to the bank and valid (a recorded proposal is re-checked: the
    // bank file may come from a run with another limit). The same list on every rank.
    std::vector<Scheme> fresh;
    for (const Scheme& scheme : bank.pending()) {
      const bool repeated = std::any_of(fresh.begin(), fresh.end(), [&](const Scheme& f) { return f == scheme; });
      if (bank.contains(scheme) || repeated || !is_valid_scheme(space, scheme))
        ++result.skipped;
      else
        fresh.push_back(scheme);
    }
    if (!sharing.shared()) {
      // Each loss enters the bank (and its file) as soon as it is known: an interrupted round
      // resumes without evaluating again what it finished.
      for (const Scheme& scheme : fresh) {
        const double loss = static_cast<double>(evaluate(scheme));
        bank.add(MemoryEntry{scheme, loss, space.flops(scheme.widths), round, source}, space);
        ++result.evaluated;
      }
    } else {
      // losses[k] from the rank that evaluates scheme k, 0 from the others; the last value counts
      // the ranks whose evaluation threw, so that all of them stop rather than wait for it.
      std::vector<double> losses(fresh.size() + 1, 0.0);
      std::exception_ptr failure;
      for (std::size_t k = 0; k < fresh.size() && !failure; ++k) {
        if (!sharing.evaluates(k)) continue;
        try {
          losses[k] = static_cast<double>(evaluate(fresh[k]));
          ++result.evaluated;
        } catch (...) {
          failure = std::current_exception();
          losses.back() = 1.0;
        }
      }
      sharing.sum_over_processes(losses);
      if (failure) std::rethrow_exception(failure);
      if (losses.back() > 0.0)
        throw ConfigError("proxy_prune: round " + std::to_string(round) +
                          ": another process failed to evaluate its schemes (its error output says why); rank " +
                          std::to_string(sharing.rank) + " stops too");
      for (std::size_t k = 0; k < fresh.size(); ++k)
        bank.add(MemoryEntry{fresh[k], losses[k], space.flops(fresh[k].widths), round, source}, space);
    }
    bank.complete_round(round, space);
  }

  const MemoryEntry* best = bank.best(space);
  require(best != nullptr, "proxy_prune: the memory bank holds no scheme with a finite loss within the FLOPs limit " +
                               detail::number(space.flops_limit));
  result.best = best->scheme;
  result.loss = best->loss;
  result.flops = space.flops(best->scheme.widths);
  return result;
}
}  // namespace detail

template <class Proxy, class Evaluate>
ProxyPruningResult proxy_prune(const SearchSpace& space, Proxy& proxy, Evaluate&& evaluate, std::int64_t rounds,
                               std::size_t candidates_per_round, MemoryBank& bank, std::string source,
                               const EvaluationSharing& sharing) {
  check_pruning_proxy<Proxy>();
  static_assert(std::is_invocable_v<Evaluate&, const Scheme&>,
                "proxy_prune: evaluate must be callable with a const progdiff::prune::Scheme&");
  static_assert(!std::is_invocable_v<Evaluate&, const Scheme&> || SchemeEvaluator<Evaluate>,
                "proxy_prune: evaluate(scheme) must return the loss as a number");
  // Only the static_assert speaks when a check fails, not the errors it would cause further down.
  if constexpr (PruningProxy<Proxy> && SchemeEvaluator<Evaluate>)
    return detail::proxy_prune_checked(space, proxy, evaluate, rounds, candidates_per_round, bank, source, sharing);
  else
    return {};
}

}  // namespace progdiff::prune

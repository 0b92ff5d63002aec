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
// Resumable: the memory bank records each round's proposals before they are evaluated and each
// evaluation as it completes; with a bank bound to a file (MemoryBank::open) an interrupted run
// restarts where it stopped: finished rounds are not proposed again, a round in progress goes on
// with its recorded proposals, and schemes already in the bank are never evaluated twice.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
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
  std::size_t evaluated = 0;  // schemes evaluated by this call
  std::size_t skipped = 0;    // proposals skipped: already in the bank, or recorded under another FLOPs limit
};

/// Runs the proxy rounds up to `rounds` in total (counting rounds the bank already completed),
/// asking for `candidates_per_round` schemes each round. A proposal that is not a valid scheme is
/// a ConfigError naming the round and the candidate, raised before any scheme of that round is
/// evaluated. ConfigError if the bank ends without any finite loss within the FLOPs limit.
template <class Proxy, class Evaluate>
ProxyPruningResult proxy_prune(const SearchSpace& space, Proxy& proxy, Evaluate&& evaluate, std::int64_t rounds,
                               std::size_t candidates_per_round, MemoryBank& bank, std::string source = "proxy");

namespace detail {
template <class Proxy, class Evaluate>
ProxyPruningResult proxy_prune_checked(const SearchSpace& space, Proxy& proxy, Evaluate& evaluate, std::int64_t rounds,
                                       std::size_t candidates_per_round, MemoryBank& bank, const std::string& source) {
  space.validate();
  require(rounds >= 0, "proxy_prune: rounds " + std::to_string(rounds) + " must be >= 0");
  require(candidates_per_round >= 1, "proxy_prune: candidates_per_round must be at least 1");

  ProxyPruningResult result;
  for (std::int64_t round = bank.completed_rounds(); round < rounds; ++round) {
    if (bank.pending().empty()) {
      std::vector<Scheme> proposals = proxy.propose(ProxyRequest{space, bank, round, rounds, candidates_per_round});
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
    const std::vector<Scheme> pending = bank.pending();
    for (const Scheme& scheme : pending) {
      if (bank.contains(scheme)) {
        ++result.skipped;
        continue;
      }
      // A recorded proposal is re-checked: the bank file may come from a run with another limit.
      if (!is_valid_scheme(space, scheme)) {
        ++result.skipped;
        continue;
      }
      const double flops = space.flops(scheme.widths);
      const double loss = static_cast<double>(evaluate(scheme));
      bank.add(MemoryEntry{scheme, loss, flops, round, source}, space);
      ++result.evaluated;
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
                               std::size_t candidates_per_round, MemoryBank& bank, std::string source) {
  check_pruning_proxy<Proxy>();
  static_assert(std::is_invocable_v<Evaluate&, const Scheme&>,
                "proxy_prune: evaluate must be callable with a const progdiff::prune::Scheme&");
  static_assert(!std::is_invocable_v<Evaluate&, const Scheme&> || SchemeEvaluator<Evaluate>,
                "proxy_prune: evaluate(scheme) must return the loss as a number");
  // Only the static_assert speaks when a check fails, not the errors it would cause further down.
  if constexpr (PruningProxy<Proxy> && SchemeEvaluator<Evaluate>)
    return detail::proxy_prune_checked(space, proxy, evaluate, rounds, candidates_per_round, bank, source);
  else
    return {};
}

}  // namespace progdiff::prune

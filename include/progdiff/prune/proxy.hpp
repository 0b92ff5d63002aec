#pragma once
// The pruning proxy of eqs. 12 and 16 (Step-Adaptive Training; eqs. 7 and 11 of TDC Training):
// theta' = Proxy(theta, T, D, S, M, FLOPs_g(i)). Each round the proxy sees the pruning problem
// (SearchSpace: layers, widths, FLOPs, the group's limit and timesteps) and the memory bank M
// of schemes evaluated so far, and proposes new schemes.
//
// A proxy is any type with
//     std::vector<Scheme> propose(const ProxyRequest& request);
// The papers used a language model; prune/search_proxy.hpp is an offline search and
// prune/external_proxy.hpp connects a command or a callback (a language model, a person).
// proxy_prune() (prune/proxy_pruning.hpp) validates every proposal before it evaluates any.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "progdiff/prune/memory_bank.hpp"
#include "progdiff/prune/scheme.hpp"
#include "progdiff/prune/search_space.hpp"

namespace progdiff::prune {

/// What a proxy is asked in one round.
struct ProxyRequest {
  const SearchSpace& space;
  const MemoryBank& bank;      // M: schemes evaluated so far, with their losses
  std::int64_t round = 0;      // 0-based round of this request
  std::int64_t rounds = 1;     // R: rounds of the whole search
  std::size_t candidates = 1;  // how many schemes to propose
};

/// A type with `std::vector<Scheme> propose(const ProxyRequest&)`.
template <class P>
concept PruningProxy = requires(P& proxy, const ProxyRequest& request) {
  { proxy.propose(request) } -> std::convertible_to<std::vector<Scheme>>;
};

namespace detail {
template <class P>
concept HasPropose = requires(P& proxy, const ProxyRequest& request) {
  proxy.propose(request);
};
}  // namespace detail

/// Fails to compile with a sentence naming what the proxy type lacks.
template <class P>
constexpr void check_pruning_proxy() {
  static_assert(detail::HasPropose<P>,
                "a pruning proxy needs a member function propose(const progdiff::prune::ProxyRequest&) "
                "callable on a non-const proxy");
  static_assert(!detail::HasPropose<P> || PruningProxy<P>,
                "a pruning proxy's propose(const ProxyRequest&) must return something convertible to "
                "std::vector<progdiff::prune::Scheme>");
}

}  // namespace progdiff::prune

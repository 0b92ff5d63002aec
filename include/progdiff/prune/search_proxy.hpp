#pragma once
// SearchProxy: the built-in pruning proxy (prune/proxy.hpp), an offline stand-in for the
// language model of eq. 16 (Step-Adaptive Training) that learns from the memory bank (eq. 17).
//
// It searches over per-layer keep ratios with an evolution strategy whose population is the
// memory bank itself:
//   * an empty bank is seeded with the uniform scheme (every layer kept at the same ratio) and,
//     when the caller gives per-layer prior scores (magnitude, Taylor, ...; higher = more
//     important), with schemes that keep layers in proportion to powers of those scores, plus
//     random perturbations of them;
//   * later rounds propose the weighted mean of the best schemes in log-ratio space, mutations
//     and crossovers of the best schemes, and exchanges of one step of FLOPs between two layers
//     of a good scheme; the mutation scale shrinks from `initial_step` to `final_step` over the
//     rounds and exchanges become more frequent, so the search ends as a local search.
// Every candidate is repaired onto the FLOPs limit: its ratios are scaled by the largest factor
// whose widths (rounded to each layer's step) fit, then layers take further steps while the
// limit allows. Proposals are always valid schemes (never over the limit) and never schemes the
// bank already holds. The repair assumes FLOPs grow with each width, as they do for conv nets;
// if not, proposals stay valid but may leave FLOPs unused.
//
// Deterministic: the proposals of a round depend only on the seed, the round and the bank.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/prune/proxy.hpp"

namespace progdiff::prune {

struct SearchProxyOptions {
  std::uint64_t seed = 0;
  std::vector<double> prior_scores;  // optional, one per layer, >= 0, higher = keep more of the layer
  double initial_step = 0.3;         // std. dev. of log keep-ratio mutations in the first round
  double final_step = 0.03;          // ... in the last round
  std::size_t parents = 4;           // best bank entries that parent the next round
};

class SearchProxy {
 public:
  explicit SearchProxy(SearchProxyOptions options = {}) : options_(std::move(options)) {
    require(options_.initial_step > 0.0 && options_.final_step > 0.0,
            "SearchProxy: initial_step and final_step must be positive");
    require(options_.parents >= 1, "SearchProxy: parents must be at least 1");
    for (std::size_t i = 0; i < options_.prior_scores.size(); ++i)
      require(std::isfinite(options_.prior_scores[i]) && options_.prior_scores[i] >= 0.0,
              "SearchProxy: prior score " + std::to_string(i) + " must be finite and >= 0");
  }

  const SearchProxyOptions& options() const { return options_; }

  std::vector<Scheme> propose(const ProxyRequest& request) {
    const SearchSpace& space = request.space;
    require(options_.prior_scores.empty() || options_.prior_scores.size() == space.size(),
            "SearchProxy: " + std::to_string(options_.prior_scores.size()) + " prior scores for " +
                std::to_string(space.size()) + " layers");
    Round r{space, request.bank, {}, Generator(options_.seed, static_cast<std::uint64_t>(request.round))};
    const double t =
        request.rounds > 1
            ? std::clamp(static_cast<double>(request.round) / static_cast<double>(request.rounds - 1), 0.0, 1.0)
            : 1.0;
    const double sigma = options_.initial_step * std::pow(options_.final_step / options_.initial_step, t);
    const std::size_t wanted = request.candidates;
    const std::vector<const MemoryEntry*> ranked = request.bank.ranked(space);
    const std::size_t n = space.size();

    if (ranked.empty()) {
      // Seeds: uniform, prior-shaped, then random perturbations of them.
      std::vector<std::vector<double>> seeds{std::vector<double>(n, 0.0)};
      if (!options_.prior_scores.empty()) {
        const std::vector<double> log_prior = log_scores(options_.prior_scores);
        for (double power : {1.0, 0.5, 2.0}) {
          std::vector<double> x(n);
          for (std::size_t i = 0; i < n; ++i) x[i] = power * log_prior[i];
          seeds.push_back(std::move(x));
        }
      }
      for (const auto& x : seeds)
        if (r.out.size() < wanted) r.offer(repair(space, x));
      for (std::size_t tries = 0; r.out.size() < wanted && tries < 50 * wanted; ++tries) {
        std::vector<double> x = seeds[tries % seeds.size()];
        for (auto& v : x) v += sigma * r.gen.normal<double>();
        r.offer(repair(space, x));
      }
      return std::move(r.out);
    }

    const std::size_t mu = std::min(options_.parents, ranked.size());
    std::vector<std::vector<double>> parents;
    for (std::size_t k = 0; k < mu; ++k) parents.push_back(log_ratios(space, ranked[k]->scheme));

    // Weighted mean of the parents (log-rank weights, as in CMA-ES's recombination).
    {
      std::vector<double> w(mu);
      for (std::size_t k = 0; k < mu; ++k) w[k] = std::log(static_cast<double>(mu) + 0.5) - std::log(k + 1.0);
      const double total = std::accumulate(w.begin(), w.end(), 0.0);
      std::vector<double> mean(n, 0.0);
      for (std::size_t k = 0; k < mu; ++k)
        for (std::size_t i = 0; i < n; ++i) mean[i] += w[k] / total * parents[k][i];
      r.offer(repair(space, mean));
    }

    const double exchange_share = 0.25 + 0.5 * t;
    std::size_t failures = 0;
    for (std::size_t tries = 0; r.out.size() < wanted && tries < 50 * wanted; ++tries) {
      // Rank-biased choice of a parent: index floor(mu * u^2) favours the best.
      const auto pick = [&] {
        const double u = r.gen.uniform(0.0, 1.0);
        return std::min(mu - 1, static_cast<std::size_t>(static_cast<double>(mu) * u * u));
      };
      const std::size_t before = r.out.size();
      if (n >= 2 && r.gen.uniform(0.0, 1.0) < exchange_share) {
        const std::size_t from = r.gen.below(n);
        std::size_t to = r.gen.below(n - 1);
        if (to >= from) ++to;
        r.offer(exchange(space, ranked[pick()]->scheme, from, to, 1 + failures / 8));
      } else {
        std::vector<double> x = parents[pick()];
        if (mu >= 2 && r.gen.uniform(0.0, 1.0) < 0.3) {
          const std::vector<double>& other = parents[pick()];
          for (std::size_t i = 0; i < n; ++i)
            if (r.gen.uniform(0.0, 1.0) < 0.5) x[i] = other[i];
        }
        // Duplicates widen the next mutation, so a converged bank still yields new schemes.
        const double s = sigma * (1.0 + 0.25 * static_cast<double>(failures));
        const double p = std::max(1.0 / static_cast<double>(n), 0.5);
        for (auto& v : x)
          if (r.gen.uniform(0.0, 1.0) < p) v += s * r.gen.normal<double>();
        r.offer(repair(space, x));
      }
      failures = r.out.size() > before ? 0 : failures + 1;
    }
    return std::move(r.out);
  }

  /// The widths nearest to keep ratios exp(x_i) * c, for the largest c whose FLOPs fit the
  /// limit, then grown step by step (largest shortfall first) while the limit allows.
  static Scheme repair(const SearchSpace& space, const std::vector<double>& log_ratio) {
    const std::size_t n = space.size();
    Scheme full = Scheme::full(space);
    if (space.flops(full.widths) <= space.flops_limit) return full;
    const auto widths_at = [&](double log_scale) {
      Scheme s;
      for (std::size_t i = 0; i < n; ++i) {
        const PrunableLayer& l = space.layers[i];
        const double ratio = std::min(1.0, std::exp(std::min(log_ratio[i] + log_scale, 0.0)));
        s.widths.push_back(l.nearest_allowed(ratio * static_cast<double>(l.width)));
      }
      return s;
    };
    // Bracket: at lo every layer is at min_width (fits, space.validate()), at hi every layer is full.
    double lo = 0.0, hi = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const PrunableLayer& l = space.layers[i];
      lo = std::min(lo, std::log(static_cast<double>(l.min_width) / static_cast<double>(l.width)) - log_ratio[i] - 1.0);
      hi = std::max(hi, -log_ratio[i] + 1.0);
    }
    for (int it = 0; it < 60; ++it) {
      const double mid = 0.5 * (lo + hi);
      (space.flops(widths_at(mid).widths) <= space.flops_limit ? lo : hi) = mid;
    }
    Scheme s = widths_at(lo);
    std::vector<double> target(n);
    for (std::size_t i = 0; i < n; ++i)
      target[i] =
          std::min(1.0, std::exp(std::min(log_ratio[i] + lo, 0.0))) * static_cast<double>(space.layers[i].width);
    grow(space, s,
         [&](std::size_t i) { return (target[i] - static_cast<double>(s.widths[i])) / space.layers[i].step; });
    return s;
  }

  /// `scheme` with `steps` steps taken from layer `from` and given to layer `to` as far as the limit
  /// allows, then grown while the limit allows.
  static Scheme exchange(const SearchSpace& space, const Scheme& scheme, std::size_t from, std::size_t to,
                         std::size_t steps) {
    Scheme s = scheme;
    const PrunableLayer& l = space.layers[from];
    const std::int64_t removed =
        std::min<std::int64_t>(static_cast<std::int64_t>(steps), (s.widths[from] - l.min_width) / l.step);
    s.widths[from] -= removed * l.step;
    while (s.widths[to] + space.layers[to].step <= space.layers[to].width) {
      s.widths[to] += space.layers[to].step;
      if (space.flops(s.widths) > space.flops_limit) {
        s.widths[to] -= space.layers[to].step;
        break;
      }
    }
    grow(space, s, [&](std::size_t i) { return i == from ? -1.0 : 0.0; });
    return s;
  }

 private:
  struct Round {
    const SearchSpace& space;
    const MemoryBank& bank;
    std::vector<Scheme> out;
    Generator gen;
    // Keeps a candidate that is valid and new to both the bank and this round.
    void offer(const Scheme& s) {
      if (!is_valid_scheme(space, s) || bank.contains(s)) return;
      if (std::find(out.begin(), out.end(), s) != out.end()) return;
      out.push_back(s);
    }
  };

  // Adds single steps, the layer of highest priority first, until no layer can grow within the limit.
  template <class Priority>
  static void grow(const SearchSpace& space, Scheme& s, Priority priority) {
    const std::size_t n = space.size();
    std::vector<std::size_t> order(n);
    for (bool grew = true; grew;) {
      grew = false;
      std::iota(order.begin(), order.end(), std::size_t{0});
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return priority(a) > priority(b); });
      for (std::size_t i : order) {
        const PrunableLayer& l = space.layers[i];
        if (s.widths[i] + l.step > l.width) continue;
        s.widths[i] += l.step;
        if (space.flops(s.widths) <= space.flops_limit) {
          grew = true;
          break;
        }
        s.widths[i] -= l.step;
      }
    }
  }

  static std::vector<double> log_ratios(const SearchSpace& space, const Scheme& s) {
    std::vector<double> x;
    for (std::size_t i = 0; i < space.size(); ++i) x.push_back(std::log(s.keep_ratio(space, i)));
    return x;
  }

  // log(score / geometric mean); zero scores are lifted to a small fraction of the largest.
  static std::vector<double> log_scores(const std::vector<double>& scores) {
    const double top = *std::max_element(scores.begin(), scores.end());
    std::vector<double> x;
    for (double s : scores) x.push_back(std::log(std::max(s, top > 0.0 ? 1e-6 * top : 1.0)));
    const double mean = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
    for (auto& v : x) v -= mean;
    return x;
  }

  SearchProxyOptions options_;
};

}  // namespace progdiff::prune

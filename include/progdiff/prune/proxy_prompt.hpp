#pragma once
// The structured prompt of Proxy-based Pruning (Step-Adaptive Training, eq. 16: "all information,
// including the model architecture, is input ... in the form of a structured prompt, and the
// pruning scheme is obtained by specifying the output format").
//
// proxy_prompt_json() describes one round: the model's prunable layers (width, fewest channels,
// step, the FLOPs one step of the layer costs in the full model), the full and narrowest FLOPs,
// the group's FLOPs limit (eq. 9) and timesteps (eq. 10), the memory bank best first (eq. 17), how
// many schemes to propose and the answer format that prune/proxy_answer.hpp reads.
// proxy_prompt_text() renders the same content as plain text for a language model.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/prune/proxy.hpp"

namespace progdiff::prune {

struct PromptOptions {
  std::vector<double> prior_scores;   // optional per-layer importance (e.g. magnitude or Taylor), higher = keep
  std::size_t max_bank_entries = 64;  // best entries of the bank shown; the rest are counted
  std::string instructions;           // optional extra text for the proxy (appended to the task)
};

namespace detail {
inline double rounded(double x, int digits = 4) {
  double scale = 1.0;
  for (int i = 0; i < digits; ++i) scale *= 10.0;
  return std::round(x * scale) / scale;
}
}  // namespace detail

/// The answer format, as the prompt states it.
inline std::string proxy_answer_format(std::size_t candidates) {
  return "Answer with one JSON object and nothing else: {\"schemes\": [S1, S2, ...]} with " +
         std::to_string(candidates) +
         " schemes. Each scheme is {\"keep_ratios\": {\"<layer name>\": r, ...}} with r in (0, 1], the fraction of "
         "the layer's channels kept, or {\"widths\": {\"<layer name>\": channels, ...}}. A layer left out keeps all "
         "its channels. Widths are rounded to the layer's step and must not fall below its min_width. Every scheme "
         "must stay within flops_limit; schemes already in the memory bank are not evaluated again.";
}

/// The prompt of one round as JSON (see the top of this header).
inline nlohmann::json proxy_prompt_json(const ProxyRequest& request, const PromptOptions& options = {}) {
  const SearchSpace& space = request.space;
  require(options.prior_scores.empty() || options.prior_scores.size() == space.size(),
          "proxy prompt: " + std::to_string(options.prior_scores.size()) + " prior scores for " +
              std::to_string(space.size()) + " layers");
  const std::vector<std::int64_t> full = space.full_widths();
  const double full_flops = space.flops(full);
  nlohmann::json j;
  j["task"] =
      "Structured pruning of a diffusion denoiser for one group of timesteps: choose how many channels each layer "
      "keeps so that the pruned model's FLOPs stay within flops_limit and its loss on the group's timesteps is as "
      "low as possible. The memory bank lists schemes evaluated so far with that loss (lower is better).";
  if (!options.instructions.empty()) j["instructions"] = options.instructions;
  if (!space.description.empty()) j["model"] = space.description;
  j["round"] = request.round;
  j["rounds"] = request.rounds;
  j["candidates"] = request.candidates;
  j["flops_full"] = full_flops;
  j["flops_narrowest"] = space.flops(space.min_widths());
  j["flops_limit"] = space.flops_limit;
  j["flops_limit_fraction"] = detail::rounded(space.flops_limit / full_flops);
  j["timesteps"] = {{"count", space.timesteps.size()}, {"values", space.timesteps}};
  j["layers"] = nlohmann::json::array();
  for (std::size_t i = 0; i < space.size(); ++i) {
    const PrunableLayer& l = space.layers[i];
    nlohmann::json o{{"name", l.name}, {"width", l.width}, {"min_width", l.min_width}, {"step", l.step}};
    std::vector<std::int64_t> w = full;
    w[i] = l.width - l.step >= l.min_width ? l.width - l.step : l.width;
    o["flops_per_step"] = full_flops - space.flops(w);  // FLOPs saved by removing one step from the full model
    w[i] = l.min_width;
    o["flops_saved_at_min_width"] = full_flops - space.flops(w);
    if (!options.prior_scores.empty()) o["prior_score"] = options.prior_scores[i];
    j["layers"].push_back(std::move(o));
  }
  const std::vector<const MemoryEntry*> ranked = request.bank.ranked(space);
  j["memory_bank"] = nlohmann::json::array();
  for (std::size_t k = 0; k < ranked.size() && k < options.max_bank_entries; ++k) {
    const MemoryEntry& e = *ranked[k];
    nlohmann::json ratios = nlohmann::json::object();
    for (std::size_t i = 0; i < space.size(); ++i)
      ratios[space.layers[i].name] = detail::rounded(e.scheme.keep_ratio(space, i));
    j["memory_bank"].push_back({{"rank", k + 1},
                                {"loss", e.loss},
                                {"flops", e.flops},
                                {"round", e.round},
                                {"keep_ratios", std::move(ratios)}});
  }
  j["memory_bank_not_shown"] = request.bank.size() - std::min(ranked.size(), options.max_bank_entries);
  j["answer_format"] = proxy_answer_format(request.candidates);
  return j;
}

/// The same prompt as readable text.
inline std::string proxy_prompt_text(const ProxyRequest& request, const PromptOptions& options = {}) {
  const nlohmann::json j = proxy_prompt_json(request, options);
  const auto num = [](const nlohmann::json& v) { return v.is_number() ? detail::number(v.get<double>()) : v.dump(); };
  std::string t = j["task"].get<std::string>() + "\n";
  if (j.contains("instructions")) t += j["instructions"].get<std::string>() + "\n";
  if (j.contains("model")) t += "\nModel: " + j["model"].get<std::string>() + "\n";
  t += "\nRound " + num(j["round"]) + " of " + num(j["rounds"]) + "; propose " + num(j["candidates"]) + " schemes.\n";
  t += "FLOPs: full model " + num(j["flops_full"]) + ", narrowest allowed " + num(j["flops_narrowest"]) + ", limit " +
       num(j["flops_limit"]) + " (" + num(j["flops_limit_fraction"]) + " of full).\n";
  const auto& ts = request.space.timesteps;
  t += "Timesteps of the group: " + std::to_string(ts.size());
  if (!ts.empty()) t += " (from " + std::to_string(ts.front()) + " to " + std::to_string(ts.back()) + ")";
  t += "\n\nPrunable layers (name: width, min_width, step, FLOPs per step removed, FLOPs saved at min_width";
  t += options.prior_scores.empty() ? "):\n" : ", prior importance):\n";
  for (const auto& l : j["layers"]) {
    t += "- " + l["name"].get<std::string>() + ": " + num(l["width"]) + ", " + num(l["min_width"]) + ", " +
         num(l["step"]) + ", " + num(l["flops_per_step"]) + ", " + num(l["flops_saved_at_min_width"]);
    if (l.contains("prior_score")) t += ", " + num(l["prior_score"]);
    t += "\n";
  }
  t += "\nMemory bank (best first: loss, FLOPs, keep ratios):\n";
  if (j["memory_bank"].empty()) t += "(empty)\n";
  for (const auto& e : j["memory_bank"]) {
    t += num(e["rank"]) + ". loss " + num(e["loss"]) + ", FLOPs " + num(e["flops"]) + ":";
    for (const auto& [name, r] : e["keep_ratios"].items()) t += " " + name + "=" + num(r);
    t += "\n";
  }
  if (j["memory_bank_not_shown"].get<std::size_t>() > 0)
    t += "(" + num(j["memory_bank_not_shown"]) + " more entries not shown: worse, failed or over the limit)\n";
  t += "\n" + j["answer_format"].get<std::string>() + "\n";
  return t;
}

}  // namespace progdiff::prune

#pragma once
// Reading a proxy's answer (the output format stated by prune/proxy_prompt.hpp):
//   {"schemes": [{"keep_ratios": {"<layer>": 0.75, ...}}, {"widths": {"<layer>": 48, ...}}, ...]}
// or the bare array. The JSON may sit inside a Markdown code fence, as language models write it.
//
// An answer is accepted whole or not at all: every scheme is decoded and validated (layer names,
// ratios in (0, 1], widths on the step grid and not below min_width, the FLOPs limit of eq. 9)
// before any is returned, and a bad answer is an exception whose message lists every problem:
// FormatError when the text is not JSON of this shape (with line and column), ConfigError when a
// scheme names an unknown layer, an out-of-range value or exceeds the FLOPs limit.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/core/json_file.hpp"
#include "progdiff/prune/scheme.hpp"
#include "progdiff/prune/search_space.hpp"

namespace progdiff::prune {

namespace detail {
// The text between the first Markdown code fence and the next one, if the answer has a fence.
inline std::string_view strip_code_fence(std::string_view text) {
  const std::size_t open = text.find("```");
  if (open == std::string_view::npos) return text;
  const std::size_t body = text.find('\n', open);
  if (body == std::string_view::npos) return text;
  const std::size_t close = text.find("```", body + 1);
  if (close == std::string_view::npos) return text;
  return text.substr(body + 1, close - body - 1);
}

// One scheme of an answer; throws FormatError (shape) or ConfigError (content) with `where` in front.
inline Scheme decode_answer_scheme(const SearchSpace& space, const nlohmann::json& s, const std::string& where) {
  if (!s.is_object()) throw FormatError(where + ": expected an object, got " + std::string(s.type_name()));
  const bool has_ratios = s.contains("keep_ratios"), has_widths = s.contains("widths");
  if (has_ratios == has_widths)
    throw FormatError(where + ": expected exactly one of the keys \"keep_ratios\" and \"widths\"");
  const nlohmann::json& values = has_ratios ? s["keep_ratios"] : s["widths"];
  const char* key = has_ratios ? "keep_ratios" : "widths";
  if (!values.is_object()) throw FormatError(where + ": \"" + key + "\" must be an object of numbers by layer name");
  Scheme scheme;
  try {
    if (has_ratios) {
      std::map<std::string, double> ratios;
      for (const auto& [name, v] : values.items()) {
        if (!v.is_number()) throw FormatError("keep ratio of '" + name + "' is " + v.dump() + ", not a number");
        ratios[name] = v.get<double>();
      }
      scheme = scheme_from_ratios(space, ratios);
    } else {
      std::map<std::string, std::int64_t> widths;
      for (const auto& [name, v] : values.items()) {
        const bool integral = v.is_number_integer() || (v.is_number_float() && std::isfinite(v.get<double>()) &&
                                                        v.get<double>() == std::floor(v.get<double>()));
        if (!integral) throw FormatError("width of '" + name + "' is " + v.dump() + ", not a whole number");
        widths[name] = v.is_number_integer() ? v.get<std::int64_t>() : static_cast<std::int64_t>(v.get<double>());
      }
      scheme = scheme_from_widths(space, widths);
    }
    validate_scheme(space, scheme);
  } catch (const FormatError& e) {
    throw FormatError(where + ": " + e.what());
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  }
  return scheme;
}
}  // namespace detail

/// The schemes of a proxy's answer, all validated against `space`; `source` names the proxy in
/// error messages. Throws (nothing returned) if any part of the answer is bad.
inline std::vector<Scheme> parse_proxy_answer(const SearchSpace& space, std::string_view answer,
                                              const std::string& source = "proxy answer") {
  const nlohmann::json j = parse_json_text(detail::strip_code_fence(answer), source);
  const nlohmann::json* list = &j;
  if (j.is_object()) {
    if (!j.contains("schemes")) throw FormatError(source + ": missing key \"schemes\"");
    list = &j["schemes"];
  }
  if (!list->is_array())
    throw FormatError(source + ": expected {\"schemes\": [...]} or an array of schemes, got " +
                      std::string(list->type_name()));
  if (list->empty()) throw FormatError(source + ": the answer holds no scheme");
  std::vector<Scheme> schemes;
  std::string problems;
  bool shape_problem = false;
  for (std::size_t k = 0; k < list->size(); ++k) {
    try {
      schemes.push_back(detail::decode_answer_scheme(space, (*list)[k], "scheme " + std::to_string(k)));
    } catch (const FormatError& e) {
      shape_problem = true;
      problems += std::string("\n  ") + e.what();
    } catch (const ConfigError& e) {
      problems += std::string("\n  ") + e.what();
    }
  }
  if (!problems.empty()) {
    const std::string message = source + ": answer rejected, nothing applied:" + problems;
    if (shape_problem) throw FormatError(message);
    throw ConfigError(message);
  }
  return schemes;
}

}  // namespace progdiff::prune

#pragma once
// Parsing of JSON text for the pruning module, with errors that name the source and position.
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"

namespace progdiff::prune::detail {

/// "line L, column C (byte B)" for a byte offset into `text` (1-based line and column).
inline std::string text_position(std::string_view text, std::size_t byte) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column) + " (byte " + std::to_string(byte) + ")";
}

/// Parses `text`; a FormatError "<source>: malformed JSON at line L, column C (byte B): <why>" if it is not JSON.
inline nlohmann::json parse_json(std::string_view text, const std::string& source) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann reports the byte after the offending one, 1-based; point at the offending byte.
    const std::size_t byte = e.byte > 0 ? e.byte - 1 : 0;
    std::string why = e.what();
    if (const auto colon = why.find(": "); colon != std::string::npos) why = why.substr(colon + 2);
    throw FormatError(source + ": malformed JSON at " + text_position(text, byte) + ": " + why);
  }
}

}  // namespace progdiff::prune::detail

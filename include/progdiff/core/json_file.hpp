#pragma once
// Reading JSON text and files with errors that name the source and the position: every JSON file
// the library reads (configs, plans, memory banks, run records) goes through here.
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"

namespace progdiff {

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
inline nlohmann::json parse_json_text(std::string_view text, const std::string& source) {
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

/// Reads and parses the JSON file at `path`. Errors name it, after `what` when given ("schedule
/// config /a/b.json: ..."): IoError if it cannot be opened or read, FormatError with the line and
/// column if it is not JSON.
inline nlohmann::json read_json_file(const std::filesystem::path& path, const std::string& what = {}) {
  const std::string source = what.empty() ? path.string() : what + " " + path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(source + ": cannot open (missing file?)");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw IoError(source + ": cannot read");
  return parse_json_text(text.str(), source);
}

}  // namespace progdiff

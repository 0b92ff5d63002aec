#pragma once
// A reader of NumPy's .npy format (numpy.lib.format, versions 1.0-3.0): the magic "\x93NUMPY",
// a version, a little-endian header length (2 bytes in 1.0, 4 in 2.0 and 3.0), then a Python
// dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)} and the raw elements.
// Element types '<f4', '<f8' and '|u1' in C order are read; anything else, and any malformed
// header or a data size that does not match the shape, is a FormatError naming the file.
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::data {

struct NpyArray {
  std::vector<std::int64_t> shape;
  std::string descr;           // '<f4', '<f8' or '|u1'
  std::vector<double> values;  // row-major, converted exactly to double
};

namespace detail {

// The dict literal of a .npy header: string keys, values kept as their source text.
inline std::map<std::string, std::string> parse_npy_dict(const std::string& text, const std::string& source) {
  auto fail = [&](const std::string& what, std::size_t at) -> void {
    throw FormatError("NPY " + source + ": header " + what + " at header character " + std::to_string(at));
  };
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  auto skip = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  skip();
  if (i >= text.size() || text[i] != '{') fail("does not start with '{'", i);
  ++i;
  for (;;) {
    skip();
    if (i < text.size() && text[i] == '}') break;
    if (i >= text.size() || (text[i] != '\'' && text[i] != '"')) fail("expects a quoted key", i);
    const char quote = text[i++];
    const std::size_t key_end = text.find(quote, i);
    if (key_end == std::string::npos) fail("has an unterminated key", i);
    const std::string key = text.substr(i, key_end - i);
    i = key_end + 1;
    skip();
    if (i >= text.size() || text[i] != ':') fail("expects ':' after key '" + key + "'", i);
    ++i;
    skip();
    const std::size_t value_start = i;
    if (i < text.size() && (text[i] == '\'' || text[i] == '"')) {
      const std::size_t end = text.find(text[i], i + 1);
      if (end == std::string::npos) fail("has an unterminated string for key '" + key + "'", i);
      i = end + 1;
    } else if (i < text.size() && text[i] == '(') {
      const std::size_t end = text.find(')', i);
      if (end == std::string::npos) fail("has an unterminated tuple for key '" + key + "'", i);
      i = end + 1;
    } else {
      while (i < text.size() && text[i] != ',' && text[i] != '}') ++i;
    }
    std::string value = text.substr(value_start, i - value_start);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
    if (!out.emplace(key, value).second) fail("repeats key '" + key + "'", value_start);
    skip();
    if (i < text.size() && text[i] == ',') {
      ++i;
      continue;
    }
    skip();
    if (i >= text.size() || text[i] != '}') fail("expects ',' or '}'", i);
    break;
  }
  return out;
}

inline std::vector<std::int64_t> parse_npy_shape(const std::string& tuple, const std::string& source) {
  if (tuple.size() < 2 || tuple.front() != '(' || tuple.back() != ')')
    throw FormatError("NPY " + source + ": 'shape' is " + tuple + ", not a tuple");
  std::vector<std::int64_t> shape;
  std::size_t i = 1;
  while (i + 1 < tuple.size()) {
    while (i + 1 < tuple.size() && (tuple[i] == ' ' || tuple[i] == ',')) ++i;
    if (i + 1 >= tuple.size()) break;
    std::int64_t d = 0;
    std::size_t digits = 0;
    while (i + 1 < tuple.size() && std::isdigit(static_cast<unsigned char>(tuple[i]))) {
      if (d > (std::int64_t(1) << 40)) throw FormatError("NPY " + source + ": dimension in " + tuple + " is too large");
      d = d * 10 + (tuple[i++] - '0');
      ++digits;
    }
    if (digits == 0) throw FormatError("NPY " + source + ": 'shape' " + tuple + " holds something other than integers");
    shape.push_back(d);
  }
  return shape;
}

}  // namespace detail

/// Parses .npy `bytes` (`source` for messages).
inline NpyArray parse_npy(const std::vector<std::uint8_t>& bytes, const std::string& source) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    throw FormatError("NPY " + source + ": missing the magic string \\x93NUMPY at offset 0");
  const int major = bytes[6];
  if (major < 1 || major > 3)
    throw FormatError("NPY " + source + ": format version " + std::to_string(major) + "." + std::to_string(bytes[7]) +
                      " at offset 6 is not 1.0, 2.0 or 3.0");
  std::size_t header_at = 10, header_length = bytes[8] | (std::size_t(bytes[9]) << 8);
  if (major >= 2) {
    if (bytes.size() < 12) throw FormatError("NPY " + source + ": file ends inside the header length");
    header_at = 12;
    header_length |= (std::size_t(bytes[10]) << 16) | (std::size_t(bytes[11]) << 24);
  }
  if (bytes.size() - header_at < header_length)
    throw FormatError("NPY " + source + ": header of " + std::to_string(header_length) + " bytes at offset " +
                      std::to_string(header_at) + " runs past the end of the " + std::to_string(bytes.size()) +
                      "-byte file");
  const std::string header(bytes.begin() + static_cast<std::ptrdiff_t>(header_at),
                           bytes.begin() + static_cast<std::ptrdiff_t>(header_at + header_length));
  const auto dict = detail::parse_npy_dict(header, source);
  for (const char* key : {"descr", "fortran_order", "shape"})
    if (!dict.count(key)) throw FormatError("NPY " + source + ": header lacks the key '" + key + "'");
  NpyArray a;
  const std::string descr = dict.at("descr");
  a.descr = descr.size() >= 2 ? descr.substr(1, descr.size() - 2) : descr;
  std::size_t item = 0;
  if (a.descr == "<f4")
    item = 4;
  else if (a.descr == "<f8")
    item = 8;
  else if (a.descr == "|u1")
    item = 1;
  else
    throw FormatError("NPY " + source + ": element type " + descr +
                      " is not supported; only '<f4', '<f8' and '|u1' are");
  if (dict.at("fortran_order") != "False")
    throw FormatError("NPY " + source + ": 'fortran_order' is " + dict.at("fortran_order") +
                      "; only C-ordered arrays (False) are supported");
  a.shape = detail::parse_npy_shape(dict.at("shape"), source);
  std::uint64_t count = 1;
  for (auto d : a.shape)
    if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(d), &count) || count > (std::uint64_t(1) << 40))
      throw FormatError("NPY " + source + ": shape " + dict.at("shape") + " is too large");
  const std::size_t data_at = header_at + header_length;
  if (bytes.size() - data_at != count * item)
    throw FormatError("NPY " + source + ": shape " + dict.at("shape") + " of " + descr + " needs " +
                      std::to_string(count * item) + " data bytes, the file holds " +
                      std::to_string(bytes.size() - data_at));
  a.values.resize(count);
  const std::uint8_t* p = bytes.data() + data_at;
  for (std::size_t i = 0; i < count; ++i) {
    if (item == 1) {
      a.values[i] = p[i];
    } else if (item == 4) {
      float f;
      std::memcpy(&f, p + 4 * i, 4);
      a.values[i] = f;
    } else {
      std::memcpy(&a.values[i], p + 8 * i, 8);
    }
  }
  return a;
}

/// Reads the .npy file at `path`; an IoError if it cannot be opened.
inline NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("NPY: cannot open " + path.string());
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_npy(bytes, path.string());
}

}  // namespace progdiff::data

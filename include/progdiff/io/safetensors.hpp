#pragma once
// Reading and writing the safetensors format (huggingface/safetensors), progdiff's checkpoint and
// fixture format:
//
//   8 bytes   N, the header length, unsigned little-endian
//   N bytes   UTF-8 JSON object: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]},
//             ..., "__metadata__": {"key": "value", ...}}
//   the rest  the byte buffer; tensor `name` is bytes [b, e) of it
//
// The reader enforces what the reference implementation (safetensors/src/tensor.rs) enforces: a
// header of at most 100,000,000 bytes inside the file, valid UTF-8 and JSON, an object whose
// entries have exactly typed dtype / shape / data_offsets, and offsets that tile the buffer from 0
// to its end without gaps or overlaps, each holding product(shape) * dtype size bytes. It also
// rejects duplicate keys, which the reference reports only indirectly (as bad offsets).
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/io/atomic_file.hpp"
#include "progdiff/io/dtype.hpp"
#include "progdiff/io/safetensors_file.hpp"
#include "progdiff/io/utf8.hpp"

namespace progdiff::io {

/// The largest header the reference implementation accepts.
inline constexpr std::uint64_t kMaxHeaderLength = 100'000'000;

namespace detail {

// Where one tensor lies in the byte buffer, before its bytes are read.
struct TensorSlot {
  std::string name;
  TensorRecord record;  // dtype and shape; bytes still empty
  std::uint64_t begin = 0, end = 0;
};

struct Layout {
  std::vector<TensorSlot> slots;  // in buffer order
  std::map<std::string, std::string> metadata;
  std::uint64_t data_start = 0;  // 8 + N
};

inline std::string quoted(const std::string& key) { return "'" + key + "'"; }

// N from the first 8 bytes, checked against the limit and against the file's size.
inline std::uint64_t header_length(std::span<const std::byte> bytes, std::uint64_t file_size,
                                   const std::string& source) {
  if (file_size < 8)
    throw FormatError(source + ": file is " + std::to_string(file_size) +
                      " bytes long, too short for the 8-byte header length");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(bytes[static_cast<std::size_t>(i)]);
  if (n > kMaxHeaderLength)
    throw FormatError(source + ": header length " + std::to_string(n) + " (bytes 0-7) exceeds the limit of " +
                      std::to_string(kMaxHeaderLength) + " bytes");
  if (n > file_size - 8)
    throw FormatError(source + ": header length " + std::to_string(n) + " (bytes 0-7) runs past the end of the " +
                      std::to_string(file_size) + "-byte file");
  return n;
}

// Parses JSON text, refusing a key that repeats within one object (nlohmann keeps the last).
inline nlohmann::json parse_json_unique_keys(std::string_view text, const std::string& source) {
  std::vector<std::set<std::string>> open_objects;
  auto on_event = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open_objects.emplace_back();
    } else if (event == Event::object_end) {
      open_objects.pop_back();
    } else if (event == Event::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second)
        throw FormatError(source + ": header has duplicate key \"" + key + "\"");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), on_event, /*allow_exceptions=*/true);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(source + ": header is not valid JSON: " + e.what());
  }
}

inline std::uint64_t unsigned_field(const nlohmann::json& value, const std::string& where) {
  if (!value.is_number_unsigned()) throw FormatError(where + " is " + value.dump() + ", not an unsigned integer");
  return value.get<std::uint64_t>();
}

inline TensorSlot parse_tensor_entry(const std::string& name, const nlohmann::json& entry, const std::string& source) {
  const std::string where = source + ": tensor " + quoted(name);
  if (!entry.is_object()) throw FormatError(where + ": entry is " + std::string(entry.type_name()) + ", not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field)) throw FormatError(where + ": entry lacks the field \"" + field + "\"");
  // Other fields are ignored, as the reference does.
  TensorSlot slot;
  slot.name = name;

  const auto& dtype = entry["dtype"];
  if (!dtype.is_string()) throw FormatError(where + ": \"dtype\" is " + dtype.dump() + ", not a string");
  slot.record.dtype = parse_dtype(dtype.get_ref<const std::string&>(), where);

  const auto& shape = entry["shape"];
  if (!shape.is_array()) throw FormatError(where + ": \"shape\" is " + shape.dump() + ", not an array");
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::uint64_t d = unsigned_field(shape[i], where + ": \"shape\"[" + std::to_string(i) + "]");
    if (d > static_cast<std::uint64_t>(INT64_MAX))
      throw FormatError(where + ": shape dimension " + std::to_string(d) + " overflows a 64-bit signed size");
    slot.record.shape.push_back(static_cast<std::int64_t>(d));
  }

  const auto& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    throw FormatError(where + ": \"data_offsets\" is " + offsets.dump() + ", not a [begin, end] pair");
  slot.begin = unsigned_field(offsets[0], where + ": \"data_offsets\"[0]");
  slot.end = unsigned_field(offsets[1], where + ": \"data_offsets\"[1]");
  return slot;
}

inline std::map<std::string, std::string> parse_metadata(const nlohmann::json& value, const std::string& source) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;  // the reference reads null as "no metadata"
  if (!value.is_object())
    throw FormatError(source + ": \"__metadata__\" is " + std::string(value.type_name()) + ", not an object");
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      throw FormatError(source + ": \"__metadata__\" value for key \"" + key + "\" is " + v.dump() + ", not a string");
    metadata.emplace(key, v.get<std::string>());
  }
  return metadata;
}

// The tensors' places in the buffer, checked to tile it exactly: offsets sorted, the first at 0,
// each starting where the previous ended, each as long as its shape and dtype need, and the last
// ending at the end of the file.
inline void check_layout(std::vector<TensorSlot>& slots, std::uint64_t buffer_size, const std::string& source) {
  std::sort(slots.begin(), slots.end(), [](const TensorSlot& a, const TensorSlot& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  std::uint64_t expected = 0;
  const TensorSlot* previous = nullptr;
  for (const TensorSlot& s : slots) {
    const std::string where = source + ": tensor " + quoted(s.name) + ": data_offsets [" + std::to_string(s.begin) +
                              ", " + std::to_string(s.end) + "]";
    if (s.end < s.begin) throw FormatError(where + " end before they begin");
    if (s.begin != expected) {
      if (!previous) throw FormatError(where + " do not start at 0, where the first tensor's data must begin");
      if (s.begin < expected)
        throw FormatError(where + " overlap tensor " + quoted(previous->name) + ", which ends at " +
                          std::to_string(expected));
      throw FormatError(where + " leave a gap of " + std::to_string(s.begin - expected) + " bytes after tensor " +
                        quoted(previous->name) + ", which ends at " + std::to_string(expected));
    }
    std::uint64_t count = 1;
    for (auto d : s.record.shape)
      if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(d), &count))
        throw FormatError(source + ": tensor " + quoted(s.name) + ": shape " + shape_string(s.record.shape) +
                          " overflows 64 bits");
    std::uint64_t nbytes = 0;
    if (__builtin_mul_overflow(count, dtype_size(s.record.dtype), &nbytes))
      throw FormatError(source + ": tensor " + quoted(s.name) + ": shape " + shape_string(s.record.shape) + " of " +
                        std::string(dtype_name(s.record.dtype)) + " overflows 64 bits in bytes");
    if (s.end - s.begin != nbytes)
      throw FormatError(where + " hold " + std::to_string(s.end - s.begin) + " bytes, but shape " +
                        shape_string(s.record.shape) + " of " + std::string(dtype_name(s.record.dtype)) + " needs " +
                        std::to_string(nbytes));
    expected = s.end;
    previous = &s;
  }
  if (expected < buffer_size)
    throw FormatError(source + ": " + std::to_string(buffer_size - expected) + " trailing bytes: the tensors cover " +
                      std::to_string(expected) + " bytes of a " + std::to_string(buffer_size) + "-byte buffer");
  if (expected > buffer_size)
    throw FormatError(source + ": tensor " + quoted(previous->name) + " ends at buffer byte " +
                      std::to_string(expected) + ", past the end of the " + std::to_string(buffer_size) +
                      "-byte buffer");
}

// Everything the header says, checked against a file of `file_size` bytes.
inline Layout parse_header(std::span<const std::byte> header, std::uint64_t file_size, const std::string& source) {
  const std::string_view text(reinterpret_cast<const char*>(header.data()), header.size());
  if (auto bad = find_invalid_utf8(text))
    throw FormatError(source + ": header is not valid UTF-8 (file byte " + std::to_string(8 + *bad) + ")");
  // nlohmann stops at a NUL byte as if the input ended there; JSON allows none outside strings
  // (and inside them only escaped), so "{}\0junk" must not pass as "{}".
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    throw FormatError(source + ": header is not valid JSON: NUL byte at file byte " + std::to_string(8 + nul));
  const nlohmann::json root = parse_json_unique_keys(text, source);
  if (!root.is_object())
    throw FormatError(source + ": header is a JSON " + std::string(root.type_name()) + ", not an object");
  Layout layout;
  layout.data_start = 8 + header.size();
  for (const auto& [key, value] : root.items()) {
    if (key == kMetadataKey)
      layout.metadata = parse_metadata(value, source);
    else
      layout.slots.push_back(parse_tensor_entry(key, value, source));
  }
  check_layout(layout.slots, file_size - layout.data_start, source);
  return layout;
}

// The header JSON of `file`, padded with spaces to a multiple of 8 bytes so the buffer starts
// 8-aligned; tensors in name order with contiguous offsets.
inline std::string make_header(const SafetensorsFile& file) {
  auto check_text = [&](const std::string& text, const std::string& what) {
    if (auto bad = find_invalid_utf8(text))
      throw FormatError(file.source + ": " + what + " is not valid UTF-8 (byte " + std::to_string(*bad) + ")");
  };
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) {
    nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
    for (const auto& [key, value] : file.metadata) {
      check_text(key, "metadata key " + quoted(key));
      check_text(value, "metadata value for key " + quoted(key));
      metadata[key] = value;
    }
    header[std::string(kMetadataKey)] = std::move(metadata);
  }
  std::uint64_t offset = 0;
  for (const auto& [name, record] : file.tensors) {
    const std::string where = file.source + ": tensor " + quoted(name);
    if (name == kMetadataKey) throw FormatError(where + ": the name is reserved for metadata");
    check_text(name, "tensor name " + quoted(name));
    std::uint64_t count = 1;
    for (auto d : record.shape) {
      if (d < 0) throw ShapeError(where + ": negative dimension in shape " + shape_string(record.shape));
      if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(d), &count))
        throw ShapeError(where + ": shape " + shape_string(record.shape) + " overflows 64 bits");
    }
    std::uint64_t nbytes = 0;
    if (__builtin_mul_overflow(count, dtype_size(record.dtype), &nbytes) || nbytes != record.bytes.size())
      throw ShapeError(where + ": " + std::to_string(record.bytes.size()) + " bytes do not hold shape " +
                       shape_string(record.shape) + " of " + std::string(dtype_name(record.dtype)));
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = std::string(dtype_name(record.dtype));
    entry["shape"] = record.shape;
    entry["data_offsets"] = {offset, offset + record.bytes.size()};
    header[name] = std::move(entry);
    offset += record.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

inline std::array<std::byte, 8> little_endian(std::uint64_t n) {
  std::array<std::byte, 8> out;
  for (auto& b : out) {
    b = static_cast<std::byte>(n & 0xffu);
    n >>= 8;
  }
  return out;
}

}  // namespace detail

/// The tensors and metadata of safetensors `bytes`; a FormatError naming `source` and the
/// problem if they are malformed.
inline SafetensorsFile parse_safetensors(std::span<const std::byte> bytes, const std::string& source) {
  const std::uint64_t n = detail::header_length(bytes, bytes.size(), source);
  detail::Layout layout = detail::parse_header(bytes.subspan(8, n), bytes.size(), source);
  SafetensorsFile file;
  file.source = source;
  file.metadata = std::move(layout.metadata);
  for (auto& slot : layout.slots) {
    const auto* first = bytes.data() + layout.data_start + slot.begin;
    slot.record.bytes.assign(first, first + (slot.end - slot.begin));
    file.tensors.emplace(std::move(slot.name), std::move(slot.record));
  }
  return file;
}

/// The safetensors file at `path`; an IoError if it cannot be read, a FormatError naming the
/// path and the problem if it is malformed. Tensors are read straight into their records.
inline SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  const std::string source = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open " + source + " for reading: " + std::strerror(errno));
  std::error_code ec;
  const std::uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) throw IoError("cannot read the size of " + source + ": " + ec.message());
  auto read_exactly = [&](std::byte* into, std::uint64_t count, std::uint64_t at) {
    in.read(reinterpret_cast<char*>(into), static_cast<std::streamsize>(count));
    if (static_cast<std::uint64_t>(in.gcount()) != count)
      throw IoError("cannot read " + std::to_string(count) + " bytes at offset " + std::to_string(at) + " of " +
                    source + " (did the file change while it was read?)");
  };
  std::array<std::byte, 8> prefix{};
  if (file_size >= 8) read_exactly(prefix.data(), 8, 0);
  const std::uint64_t n = detail::header_length(prefix, file_size, source);
  std::vector<std::byte> header(n);
  read_exactly(header.data(), n, 8);
  detail::Layout layout = detail::parse_header(header, file_size, source);
  SafetensorsFile file;
  file.source = source;
  file.metadata = std::move(layout.metadata);
  for (auto& slot : layout.slots) {  // in buffer order, so the stream only moves forward
    slot.record.bytes.resize(slot.end - slot.begin);
    read_exactly(slot.record.bytes.data(), slot.record.bytes.size(), layout.data_start + slot.begin);
    file.tensors.emplace(std::move(slot.name), std::move(slot.record));
  }
  return file;
}

/// The safetensors bytes of `file`: header padded to 8 bytes, tensors in name order. A
/// FormatError or ShapeError naming the tensor if a record cannot be written.
inline std::vector<std::byte> serialize_safetensors(const SafetensorsFile& file) {
  const std::string header = detail::make_header(file);
  std::size_t total = 8 + header.size();
  for (const auto& [name, record] : file.tensors) total += record.bytes.size();
  std::vector<std::byte> out(total);
  const auto prefix = detail::little_endian(header.size());
  std::memcpy(out.data(), prefix.data(), 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  std::size_t at = 8 + header.size();
  for (const auto& [name, record] : file.tensors) {
    if (!record.bytes.empty()) std::memcpy(out.data() + at, record.bytes.data(), record.bytes.size());
    at += record.bytes.size();
  }
  return out;
}

/// Writes `file` to `path` atomically: a failure at any point leaves the previous file intact
/// and no temporary behind. An IoError naming the path and the system's reason if writing fails.
inline void write_safetensors(const std::filesystem::path& path, const SafetensorsFile& file) {
  const std::string header = detail::make_header(file);  // refuses bad records before touching the disk
  AtomicFile out(path);
  out.write(detail::little_endian(header.size()));
  out.write(std::as_bytes(std::span(header)));
  for (const auto& [name, record] : file.tensors) out.write(record.bytes);
  out.commit();
}

}  // namespace progdiff::io

#pragma once
// A reader of the IDX format of MNIST and Fashion-MNIST (LeCun et al.), plain or gzipped:
// a big-endian header (two zero bytes, a type code, the rank), the dimensions as big-endian
// uint32, then the elements. Only unsigned-byte data (type 0x08) is supported, which is what
// both data sets use. Malformed files raise FormatError naming the file and the offset.
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"

namespace progdiff::data {

struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;  // row-major
};

/// Parses IDX bytes already in memory (`name` for messages); `max_items` > 0 keeps only the
/// first items of the outermost dimension.
inline IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, const std::string& name, std::int64_t max_items = 0) {
  auto need = [&](std::size_t offset, std::size_t count, const char* what) {
    if (bytes.size() < offset + count)
      throw FormatError("IDX " + name + ": file ends at byte " + std::to_string(bytes.size()) + " while reading " +
                        what + " at offset " + std::to_string(offset));
  };
  need(0, 4, "the magic number");
  if (bytes[0] != 0 || bytes[1] != 0)
    throw FormatError("IDX " + name + ": magic number must start with two zero bytes (offset 0)");
  if (bytes[2] != 0x08) {
    const char* hex = "0123456789abcdef";
    throw FormatError("IDX " + name + ": element type 0x" + hex[bytes[2] >> 4] + hex[bytes[2] & 15] +
                      " at offset 2 is not unsigned byte (0x08)");
  }
  const int rank = bytes[3];
  if (rank < 1) throw FormatError("IDX " + name + ": rank 0 at offset 3");
  need(4, 4u * rank, "the dimensions");
  IdxArray a;
  std::uint64_t count = 1;
  for (int r = 0; r < rank; ++r) {
    const std::size_t o = 4 + 4u * r;
    const std::uint64_t d = (std::uint64_t(bytes[o]) << 24) | (bytes[o + 1] << 16) | (bytes[o + 2] << 8) | bytes[o + 3];
    a.dims.push_back(static_cast<std::int64_t>(d));
    // d < 2^32 and count <= 2^40 before the product, which is checked before it can wrap.
    if (d != 0 && count > (std::uint64_t(1) << 40) / d)
      throw FormatError("IDX " + name + ": dimensions at offset 4 are too large");
    count *= d;
  }
  const std::size_t data_at = 4 + 4u * rank;
  if (bytes.size() != data_at + count)
    throw FormatError("IDX " + name + ": header at offset 4 promises " + std::to_string(count) +
                      " elements, file holds " + std::to_string(bytes.size() - std::min(bytes.size(), data_at)));
  if (max_items > 0 && max_items < a.dims[0]) {
    count = count / static_cast<std::uint64_t>(a.dims[0]) * static_cast<std::uint64_t>(max_items);
    a.dims[0] = max_items;
  }
  a.values.assign(bytes.begin() + static_cast<std::ptrdiff_t>(data_at),
                  bytes.begin() + static_cast<std::ptrdiff_t>(data_at + count));
  return a;
}

/// Reads an IDX file, gzipped or not (zlib's gzread passes plain files through).
inline IdxArray read_idx(const std::string& path, std::int64_t max_items = 0) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw IoError("IDX: cannot open " + path);
  std::vector<std::uint8_t> bytes;
  std::uint8_t buf[1 << 16];
  int got;
  while ((got = gzread(f, buf, sizeof buf)) > 0) bytes.insert(bytes.end(), buf, buf + got);
  // A gzip stream cut short ends the loop with no error from gzread but Z_BUF_ERROR in gzerror.
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  // gzerror's text belongs to the gzFile and dies with gzclose, so it is copied first.
  const std::string message = msg && *msg ? msg : "?";
  gzclose(f);
  if (got < 0 || (err != Z_OK && err != Z_STREAM_END))
    throw FormatError("IDX " + path + ": corrupt or truncated compressed data after byte " +
                      std::to_string(bytes.size()) + ": " + message);
  return parse_idx(bytes, path, max_items);
}

}  // namespace progdiff::data

// libFuzzer target for the decoders of user image files: decode_png and parse_npy on arbitrary
// bytes (the first byte picks which) must either return a consistent result or throw a
// progdiff::Error; a crash, a sanitizer report or another exception type is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/data/npy.hpp"
#include "progdiff/io/png_decode.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::vector<std::uint8_t> bytes(data + 1, data + size);
  try {
    if (data[0] & 1) {
      const auto img = progdiff::io::decode_png(bytes, "fuzz-input");
      if (img.pixels.size() != static_cast<std::size_t>(img.width) * img.height * img.channels) std::abort();
    } else {
      const auto a = progdiff::data::parse_npy(bytes, "fuzz-input");
      std::uint64_t count = 1;
      for (auto d : a.shape) count *= static_cast<std::uint64_t>(d);
      if (count != a.values.size()) std::abort();
    }
  } catch (const progdiff::Error&) {
    // Malformed input, reported as it should be.
  }
  return 0;
}

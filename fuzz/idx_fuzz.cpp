// libFuzzer target: parse_idx on arbitrary bytes must either return an array whose values fill
// its dimensions or throw a progdiff::Error; a crash, a sanitizer report or another exception
// type is a bug. The first byte also picks a max_items limit for a second parse.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/data/idx.hpp"

namespace {
void check_consistent(const progdiff::data::IdxArray& a) {
  if (a.dims.empty()) std::abort();
  std::uint64_t count = 1;
  for (auto d : a.dims) {
    if (d < 0) std::abort();
    count *= static_cast<std::uint64_t>(d);
  }
  if (count != a.values.size()) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> bytes(data, data + size);
  try {
    const auto whole = progdiff::data::parse_idx(bytes, "fuzz-input");
    check_consistent(whole);
    const std::int64_t limit = size > 0 ? 1 + data[0] % 4 : 1;
    const auto first = progdiff::data::parse_idx(bytes, "fuzz-input", limit);
    check_consistent(first);
    if (first.dims[0] > limit || first.values.size() > whole.values.size()) std::abort();
  } catch (const progdiff::Error&) {
    // Malformed input, reported as it should be.
  }
  return 0;
}

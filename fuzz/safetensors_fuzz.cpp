// libFuzzer target: parse_safetensors on arbitrary bytes must either return a file whose records
// are consistent or throw a progdiff::Error; anything else (a crash, a sanitizer report, another
// exception type) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "progdiff/core/error.hpp"
#include "progdiff/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const progdiff::io::SafetensorsFile file = progdiff::io::parse_safetensors(bytes, "fuzz-input");
    // What was accepted must be self-consistent and survive a write and a second read unchanged.
    for (const auto& [name, record] : file.tensors) {
      std::uint64_t count = 1;
      for (auto d : record.shape) count *= static_cast<std::uint64_t>(d);
      if (count * progdiff::io::dtype_size(record.dtype) != record.bytes.size()) std::abort();
      (void)file.values<double>(name);
    }
    const std::vector<std::byte> written = progdiff::io::serialize_safetensors(file);
    const progdiff::io::SafetensorsFile again = progdiff::io::parse_safetensors(written, "fuzz-rewrite");
    if (again.tensors.size() != file.tensors.size() || again.metadata != file.metadata) std::abort();
    for (const auto& [name, record] : file.tensors) {
      const auto& other = again.at(name);
      if (other.dtype != record.dtype || other.shape != record.shape || other.bytes != record.bytes) std::abort();
    }
  } catch (const progdiff::Error&) {
    // Malformed input, reported as it should be.
  }
  return 0;
}

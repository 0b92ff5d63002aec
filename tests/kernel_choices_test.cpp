// The CPU's identity against /proc/cpuinfo, the calibration file's format and its errors, the
// order in which the file and the environment decide, the decisions taken from hand-made timings,
// and that the Winograd block size changes no result.
#include <doctest/doctest.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "kernel_support.hpp"
#include "progdiff/backend/cpu/conv_calibration.hpp"
#include "progdiff/backend/cpu/kernel_choices.hpp"

namespace progdiff_tests_kernel_choices {

namespace {

namespace cpu = progdiff::backend::cpu;
namespace fs = std::filesystem;

/// The first value of `key` in /proc/cpuinfo ("cpu family\t: 25" -> "25").
std::optional<std::string> cpuinfo_value(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    if (name == key) return line.substr(std::min(line.size(), colon + 2));
  }
  return std::nullopt;
}

/// Sets an environment variable for one scope and puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& contents) {
    static int files = 0;  // one name per file: several may exist at once
    path = fs::temp_directory_path() /
           ("progdiff_kernel_choices_" + std::to_string(::getpid()) + "_" + std::to_string(files++) + ".txt");
    std::ofstream(path) << contents;
  }
  ~TempFile() { fs::remove(path); }
};

}  // namespace

TEST_CASE("identify_cpu: vendor, family, model and brand as /proc/cpuinfo gives them") {
  const auto family = cpuinfo_value("cpu family"), model = cpuinfo_value("model"), vendor = cpuinfo_value("vendor_id"),
             brand = cpuinfo_value("model name");
  if (!family || !model || !vendor) {
    MESSAGE("skipped: /proc/cpuinfo has no x86 family and model here");
    return;
  }
  const cpu::CpuIdentity id = cpu::identify_cpu();
  CHECK(id.vendor == *vendor);
  CHECK(std::to_string(id.family) == *family);
  CHECK(std::to_string(id.model) == *model);
  if (brand) CHECK(id.brand == *brand);
  CHECK(id.l1d_bytes > 0);
  CHECK(id.l2_bytes >= id.l1d_bytes);
  for (char c : id.key()) CHECK_MESSAGE(std::string("/ \t\n").find(c) == std::string::npos, "key: ", id.key());
}

TEST_CASE("the calibration file: values, comments, and errors naming the file and line") {
  cpu::CpuIdentity id;
  id.vendor = "GenuineIntel";
  id.family = 6;
  id.model = 207;
  id.brand = "Intel(R) Xeon(R) Processor";
  CHECK(id.key() == "GenuineIntel-6-207-Intel_R__Xeon_R__Processor");

  SUBCASE("values are read") {
    TempFile file("# measured somewhere\ncpu " + id.key() + "\nwinograd_min_channels_16x16 32  # a comment\n\n" +
                  "winograd_block_bytes 786432\nwinograd_min_channels_8x8 96\n" +
                  "winograd_weight_gradient_min_channels_32x32 24\nwinograd_weight_gradient_min_channels_8x8 never\n");
    cpu::KernelChoices choices;
    cpu::read_kernel_choices(file.path, id, choices);
    CHECK(choices.winograd_min_channels ==
          std::array<int, 3>{96, 32, cpu::kBuiltInWinogradMinChannels});  // 32x32 keeps its built-in value
    CHECK(choices.winograd_min_channels_for(8 * 8) == 96);
    CHECK(choices.winograd_min_channels_for(12 * 12) == 32);
    CHECK(choices.winograd_min_channels_for(64 * 64) == cpu::kBuiltInWinogradMinChannels);
    CHECK(choices.weight_gradient_winograd_min_channels ==
          std::array<int, 3>{cpu::kWinogradNever, cpu::kBuiltInWeightGradientWinogradMinChannels, 24});
    CHECK(choices.weight_gradient_winograd_min_channels_for(8 * 8) == cpu::kWinogradNever);
    CHECK(choices.weight_gradient_winograd_min_channels_for(32 * 32) == 24);
    CHECK(choices.winograd_block_bytes == 786432);
    CHECK(choices.winograd_tile == 4);  // not in the file: the built-in value
    CHECK(choices.source == file.path.string());
  }
  SUBCASE("never") {
    TempFile file("winograd_min_channels_32x32 never\n");
    cpu::KernelChoices choices;
    cpu::read_kernel_choices(file.path, id, choices);
    CHECK(choices.winograd_min_channels[2] == cpu::kWinogradNever);
  }
  SUBCASE("written, then read back") {
    TempFile file("");
    cpu::KernelChoices written;
    written.winograd_min_channels = {cpu::kWinogradNever, 64, 24};
    written.weight_gradient_winograd_min_channels = {8, cpu::kWinogradNever, 40};
    written.winograd_block_bytes = 192 * 1024;
    written.winograd_tile = 2;
    cpu::write_kernel_choices(file.path, id, written, "line one\nline two");
    std::ifstream in(file.path);
    std::string first;
    std::getline(in, first);
    CHECK(first == "# line one");
    cpu::KernelChoices read;
    cpu::read_kernel_choices(file.path, id, read);
    CHECK(read.winograd_min_channels == written.winograd_min_channels);
    CHECK(read.weight_gradient_winograd_min_channels == written.weight_gradient_winograd_min_channels);
    CHECK(read.winograd_block_bytes == 192 * 1024);
    CHECK(read.winograd_tile == 2);
  }
  SUBCASE("another CPU's file") {
    TempFile file("cpu AuthenticAMD-25-17-AMD_EPYC\nwinograd_min_channels_32x32 32\n");
    cpu::KernelChoices choices;
    CHECK_THROWS_WITH_AS(
        cpu::read_kernel_choices(file.path, id, choices),
        doctest::Contains((file.path.string() + ":1: measured on the CPU \"AuthenticAMD-25-17-AMD_EPYC\"").c_str()),
        progdiff::ConfigError);
  }
  SUBCASE("an unknown key") {
    TempFile file("cpu " + id.key() + "\nwinograd_tiles 4\n");
    cpu::KernelChoices choices;
    CHECK_THROWS_WITH_AS(cpu::read_kernel_choices(file.path, id, choices),
                         doctest::Contains((file.path.string() + ":2: unknown key \"winograd_tiles\"").c_str()),
                         progdiff::ConfigError);
  }
  SUBCASE("bad values") {
    for (const std::string bad :
         {"winograd_min_channels_8x8 0", "winograd_min_channels_16x16 32x", "winograd_min_channels_32x32",
          "winograd_weight_gradient_min_channels_16x16 -1", "winograd_weight_gradient_min_channels_8x8 often",
          "winograd_block_bytes 100", "winograd_block_bytes many", "winograd_tile 3", "winograd_tile 4x4"}) {
      CAPTURE(bad);
      TempFile file(bad + "\n");
      cpu::KernelChoices choices;
      CHECK_THROWS_WITH_AS(cpu::read_kernel_choices(file.path, id, choices),
                           doctest::Contains((file.path.string() + ":1: winograd_").c_str()), progdiff::ConfigError);
    }
  }
}

TEST_CASE("resolve_kernel_choices: built-in, then the file, then the environment") {
  const cpu::CpuIdentity id = cpu::identify_cpu();
  TempFile file("cpu " + id.key() + "\nwinograd_min_channels_32x32 24\n");
  // On a CPU kind the library has measured, its values stand in for the build's (next test case).
  cpu::KernelChoices for_kind;
  const bool kind_measured = cpu::measured_kind_choices(id, for_kind);
  {
    ScopedEnv no_file("PROGDIFF_KERNEL_CHOICES", "none"), no_override("PROGDIFF_WINOGRAD_MIN_CHANNELS", std::nullopt),
        no_tile("PROGDIFF_WINOGRAD_TILE", std::nullopt),
        no_wg_override("PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS", std::nullopt);
    const cpu::KernelChoices built_in = cpu::resolve_kernel_choices(id);
    if (kind_measured) {
      CHECK(built_in.winograd_min_channels == for_kind.winograd_min_channels);
      CHECK(built_in.weight_gradient_winograd_min_channels == for_kind.weight_gradient_winograd_min_channels);
      CHECK(built_in.source == for_kind.source);
    } else {
      CHECK(built_in.winograd_min_channels == std::array<int, 3>{cpu::kBuiltInWinogradMinChannels,
                                                                 cpu::kBuiltInWinogradMinChannels,
                                                                 cpu::kBuiltInWinogradMinChannels});
      CHECK(built_in.weight_gradient_winograd_min_channels == std::array<int, 3>{16, 16, 16});
      CHECK(built_in.source == "built-in");
    }
    CHECK(built_in.winograd_block_bytes == 384 * 1024);
    CHECK(built_in.winograd_tile == 4);
  }
  {
    TempFile two("cpu " + id.key() + "\nwinograd_tile 2\n");
    ScopedEnv from_file("PROGDIFF_KERNEL_CHOICES", two.path.string()), tile("PROGDIFF_WINOGRAD_TILE", std::nullopt);
    CHECK(cpu::resolve_kernel_choices(id).winograd_tile == 2);
    ScopedEnv pinned("PROGDIFF_WINOGRAD_TILE", "4");  // the variable over the file
    CHECK(cpu::resolve_kernel_choices(id).winograd_tile == 4);
    ScopedEnv bad("PROGDIFF_WINOGRAD_TILE", "6");
    CHECK_THROWS_WITH_AS(cpu::resolve_kernel_choices(id),
                         doctest::Contains("PROGDIFF_WINOGRAD_TILE: winograd_tile must be 2 or 4, got \"6\""),
                         progdiff::ConfigError);
  }
  {
    ScopedEnv from_file("PROGDIFF_KERNEL_CHOICES", file.path.string()),
        no_override("PROGDIFF_WINOGRAD_MIN_CHANNELS", std::nullopt);
    CHECK(cpu::resolve_kernel_choices(id).winograd_min_channels ==
          std::array<int, 3>{for_kind.winograd_min_channels[0], for_kind.winograd_min_channels[1], 24});
  }
  {
    ScopedEnv from_file("PROGDIFF_KERNEL_CHOICES", file.path.string()), pinned("PROGDIFF_WINOGRAD_MIN_CHANNELS", "64");
    const cpu::KernelChoices pinned_choices = cpu::resolve_kernel_choices(id);
    CHECK(pinned_choices.winograd_min_channels == std::array<int, 3>{64, 64, 64});
    CHECK(pinned_choices.source == "PROGDIFF_WINOGRAD_MIN_CHANNELS");
  }
  {
    ScopedEnv no_file("PROGDIFF_KERNEL_CHOICES", "none"), bad("PROGDIFF_WINOGRAD_MIN_CHANNELS", "-3");
    CHECK_THROWS_WITH_AS(cpu::resolve_kernel_choices(id), doctest::Contains("PROGDIFF_WINOGRAD_MIN_CHANNELS: "),
                         progdiff::ConfigError);
  }
  {
    TempFile wg("cpu " + id.key() + "\nwinograd_weight_gradient_min_channels_16x16 48\n");
    ScopedEnv from_file("PROGDIFF_KERNEL_CHOICES", wg.path.string()),
        no_override("PROGDIFF_WINOGRAD_MIN_CHANNELS", std::nullopt),
        no_wg_override("PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS", std::nullopt);
    const cpu::KernelChoices from_wg_file = cpu::resolve_kernel_choices(id);
    const auto& wg_for_kind = for_kind.weight_gradient_winograd_min_channels;
    CHECK(from_wg_file.weight_gradient_winograd_min_channels == std::array<int, 3>{wg_for_kind[0], 48, wg_for_kind[2]});
    CHECK(from_wg_file.winograd_min_channels == for_kind.winograd_min_channels);
    ScopedEnv pinned("PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS", "never");  // the variable over the file
    const cpu::KernelChoices pinned_choices = cpu::resolve_kernel_choices(id);
    CHECK(pinned_choices.weight_gradient_winograd_min_channels ==
          std::array<int, 3>{cpu::kWinogradNever, cpu::kWinogradNever, cpu::kWinogradNever});
    CHECK(pinned_choices.source == "PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS");
    ScopedEnv bad("PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS", "0");
    CHECK_THROWS_WITH_AS(cpu::resolve_kernel_choices(id),
                         doctest::Contains("PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS: "
                                           "winograd_weight_gradient_min_channels must be a positive whole number"),
                         progdiff::ConfigError);
  }
  {
    ScopedEnv xdg("XDG_CACHE_HOME", "/somewhere"), no_file("PROGDIFF_KERNEL_CHOICES", std::nullopt);
    CHECK(cpu::kernel_choices_path(id) == fs::path("/somewhere/progdiff/kernel-choices") / (id.key() + ".txt"));
  }
}

TEST_CASE("measured_kind_choices: the values calibrated on the CPU kinds met, for the AVX-512 kernels only") {
  cpu::CpuIdentity zen4;
  zen4.vendor = "AuthenticAMD";
  zen4.family = 25;
  zen4.model = 17;
  zen4.avx512f = true;
  cpu::CpuIdentity zen3 = zen4;  // family 25 without AVX-512
  zen3.model = 1;
  zen3.avx512f = false;
  cpu::CpuIdentity zen5 = zen4;
  zen5.family = 26;
  zen5.model = 2;
  cpu::CpuIdentity xeon;
  xeon.vendor = "GenuineIntel";
  xeon.family = 6;
  xeon.model = 207;
  xeon.avx512f = true;
  cpu::CpuIdentity other_xeon = xeon;
  other_xeon.model = 143;

  const cpu::KernelChoices build_values;
  for (const cpu::CpuIdentity& unmeasured : {zen3, zen5, other_xeon}) {
    CAPTURE(unmeasured.key());
    cpu::KernelChoices choices;
    CHECK_FALSE(cpu::measured_kind_choices(unmeasured, choices));
    CHECK(choices.winograd_min_channels == build_values.winograd_min_channels);
    CHECK(choices.weight_gradient_winograd_min_channels == build_values.weight_gradient_winograd_min_channels);
    CHECK(choices.source == "built-in");
  }
  cpu::KernelChoices zen4_choices, xeon_choices;
#if defined(__AVX512F__)
  // The values docs/performance.md reports from progdiff_calibrate on those machines.
  REQUIRE(cpu::measured_kind_choices(zen4, zen4_choices));
  CHECK(zen4_choices.winograd_min_channels == std::array<int, 3>{32, 32, 32});
  CHECK(zen4_choices.weight_gradient_winograd_min_channels == std::array<int, 3>{16, 16, 48});
  CHECK(zen4_choices.source == "built-in for AMD Zen 4");
  REQUIRE(cpu::measured_kind_choices(xeon, xeon_choices));
  CHECK(xeon_choices.winograd_min_channels == std::array<int, 3>{96, 48, 48});
  CHECK(xeon_choices.weight_gradient_winograd_min_channels == std::array<int, 3>{16, 16, 16});

  // A calibration file on such a CPU still decides over the kind's values.
  TempFile file("cpu " + zen4.key() + "\nwinograd_min_channels_8x8 64\n");
  ScopedEnv from_file("PROGDIFF_KERNEL_CHOICES", file.path.string()),
      no_override("PROGDIFF_WINOGRAD_MIN_CHANNELS", std::nullopt),
      no_wg_override("PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS", std::nullopt);
  const cpu::KernelChoices resolved = cpu::resolve_kernel_choices(zen4);
  CHECK(resolved.winograd_min_channels == std::array<int, 3>{64, 32, 32});
  CHECK(resolved.weight_gradient_winograd_min_channels == std::array<int, 3>{16, 16, 48});
#else
  CHECK_FALSE(cpu::measured_kind_choices(zen4, zen4_choices));  // measured for other kernels
  CHECK_FALSE(cpu::measured_kind_choices(xeon, xeon_choices));
#endif
}

TEST_CASE("winograd_min_channels_from: the smallest count from which Winograd wins at every larger one") {
  // channels, size, direct ms, Winograd ms
  const std::vector<cpu::ConvTiming> crossing{
      {16, 32, 1.0, 2.0}, {16, 16, 0.5, 1.0}, {32, 32, 4.0, 3.0},   {32, 16, 1.0, 1.5},  // 32: 5.0 against 4.5
      {48, 32, 9.0, 7.0}, {48, 16, 2.0, 2.0}, {64, 32, 16.0, 11.0}, {64, 16, 4.0, 3.0}};
  CHECK(cpu::winograd_min_channels_from(crossing) == 32);

  // A win at 24 that a loss at 32 undoes does not count: the threshold applies to every larger count.
  const std::vector<cpu::ConvTiming> dip{{24, 32, 2.0, 1.9}, {32, 32, 4.0, 4.1}, {48, 32, 9.0, 7.0}};
  CHECK(cpu::winograd_min_channels_from(dip) == 48);

  const std::vector<cpu::ConvTiming> never{{32, 32, 4.0, 5.0}, {64, 32, 16.0, 16.5}};
  CHECK(cpu::winograd_min_channels_from(never) == cpu::kWinogradNever);
  CHECK(cpu::winograd_min_channels_from({}) == cpu::kWinogradNever);
}

TEST_CASE("winograd_min_channels_by_size: each image size decides on its own timings") {
  const std::vector<cpu::ConvTiming> runs{
      {32, 32, 4.0, 3.5}, {64, 32, 16.0, 11.0},  // 32x32: Winograd from 32
      {32, 16, 1.0, 1.3}, {64, 16, 4.0, 3.0},    // 16x16: from 64
      {32, 8, 0.25, 0.5}, {64, 8, 1.0, 1.4},     // 8x8: never
  };
  CHECK(cpu::winograd_min_channels_by_size(runs, {48, 48, 48}) == std::array<int, 3>{cpu::kWinogradNever, 64, 32});
  const std::vector<cpu::ConvTiming> only_large{{32, 32, 4.0, 3.5}};
  CHECK(cpu::winograd_min_channels_by_size(only_large, {48, 40, 48}) == std::array<int, 3>{48, 40, 32});
}

TEST_CASE("winograd_block_bytes_from: the fastest block, if it beats the built-in one by the margin") {
  const std::vector<cpu::BlockTiming> runs{{196608, 10.0}, {393216, 9.0}, {786432, 8.5}};
  CHECK(cpu::winograd_block_bytes_from(runs, 393216, 0.03) == 786432);  // 5.6% faster
  CHECK(cpu::winograd_block_bytes_from(runs, 393216, 0.10) == 393216);  // not 10%
  CHECK(cpu::winograd_block_bytes_from({}, 393216, 0.03) == 393216);
}

#if defined(__AVX512F__)
TEST_CASE("the Winograd block size changes no bit of the result") {
  for (const auto& [c, hw] : std::vector<std::pair<std::int64_t, std::int64_t>>{{16, 32}, {48, 16}, {130, 8}}) {
    CAPTURE(c);
    const progdiff::ConvGeometry g{3, c, hw, hw, c, 3, 3, 1, 1};
    const auto x = progdiff::test::cast<float>(progdiff::test::uniform(std::size_t(3 * c * hw * hw), 21));
    const auto w = progdiff::test::cast<float>(progdiff::test::uniform(std::size_t(c * c * 9), 22));
    const auto taps = [&w, c](std::int64_t o, std::int64_t i, int ki, int kj) {
      return w[(o * c + i) * 9 + ki * 3 + kj];
    };
    std::vector<float> small(x.size()), large(x.size());
    cpu::avx512::conv2d_winograd(g, x.data(), taps, nullptr, small.data(), 64 * 1024);
    cpu::avx512::conv2d_winograd(g, x.data(), taps, nullptr, large.data(), 4 * 1024 * 1024);
    CHECK(small == large);
  }
}
#endif

}  // namespace progdiff_tests_kernel_choices

#pragma once
// Which CPU kernel runs where two would do, decided for the CPU this process runs on.
//
// Choices such as from how many channels Winograd F(2x2, 3x3) beats the direct convolution, in the
// forward and in the weight gradient (its 2.25x fewer multiply-adds against the traffic of its
// transforms, which depends on the FMA width, the caches and the image size) are measured once per machine by
// progdiff_calibrate (apps/calibrate) and kept in a small text file keyed by the CPU, which every later process reads.
// Without that file the built-in values apply. Resolution order, once per process:
//
//   1. built-in values: those measured on the running CPU's kind where the library has met it
//      (measured_kind_choices below: AMD Zen 4, the Intel Xeon of family 6 model 207), else the
//      build's (measured on AMD Zen 5 for AVX-512 builds, on AMD Zen 3 for AVX2 builds);
//   2. the calibration file: $PROGDIFF_KERNEL_CHOICES if set (a path, or "none" to skip it),
//      else $XDG_CACHE_HOME/progdiff/kernel-choices/<cpu key>.txt (~/.cache if XDG_CACHE_HOME is unset);
//   3. $PROGDIFF_WINOGRAD_MIN_CHANNELS (the forward's crossover) and
//      $PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS (the weight gradient's), each overriding the
//      file for every image size, and $PROGDIFF_WINOGRAD_TILE (2 or 4), which overrides the file's
//      winograd_tile.
//
// The choice of kernel changes the rounding of a convolution (not its value beyond float
// precision), so two machines give bit-identical runs only with the same choices: pin them with
// the three variables where that matters.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "progdiff/backend/cpu/cpu_identity.hpp"
#include "progdiff/core/error.hpp"

namespace progdiff::backend::cpu {

/// The never-Winograd value: no convolution has this many channels.
inline constexpr int kWinogradNever = std::numeric_limits<int>::max();

/// The built-in Winograd crossover in channels, for the kernels this build has: with AVX-512, 48
/// (the direct kernel against Winograd on an AMD Zen 5 at 32x32, where 32 channels are about
/// even); with AVX2 and no AVX-512, 16 (the implicit GEMM against Winograd on an AMD Zen 3, where
/// 48 made both DDIM and training slower; docs/performance.md).
#if defined(__AVX512F__)
inline constexpr int kBuiltInWinogradMinChannels = 48;
#else
inline constexpr int kBuiltInWinogradMinChannels = 16;
#endif

/// The built-in crossover of the weight gradient: 16 channels a side, the least the AVX-512 kernel
/// takes. On an AMD Zen 3 the AVX2 Winograd weight gradient took 0.87-1.04 of the implicit GEMM's
/// time at 16 channels and 32x32 one morning, 1.10-1.19 one evening, and 0.68-0.80 at 16x16 and
/// 8x8; the training step was faster with it either time (docs/performance.md).
inline constexpr int kBuiltInWeightGradientWinogradMinChannels = 16;

struct KernelChoices {
  /// Image sizes whose crossover is measured apart: outputs of up to 64 pixels (8x8), up to 256
  /// (16x16), and larger (32x32 and up). Small images have few Winograd tiles per transform.
  static constexpr int kSizeClasses = 3;
  static constexpr const char* kSizeClassNames[kSizeClasses] = {"8x8", "16x16", "32x32"};
  static constexpr int size_class(std::int64_t pixels) { return pixels <= 64 ? 0 : pixels <= 256 ? 1 : 2; }

  /// Per size class, the forward (and backward data) of a 3x3 stride-1 "same" convolution that the
  /// direct kernel can also run goes through Winograd from this many channels (the smaller of c_in
  /// and c_out) up.
  std::array<int, kSizeClasses> winograd_min_channels{kBuiltInWinogradMinChannels, kBuiltInWinogradMinChannels,
                                                      kBuiltInWinogradMinChannels};
  /// Per size class of the image, the weight gradient of such a convolution goes through Winograd
  /// from this many channels (the smaller of c_in and c_out) up; AVX-512 builds take 16 at least.
  std::array<int, kSizeClasses> weight_gradient_winograd_min_channels{kBuiltInWeightGradientWinogradMinChannels,
                                                                      kBuiltInWeightGradientWinogradMinChannels,
                                                                      kBuiltInWeightGradientWinogradMinChannels};
  /// Bytes of the L2 cache that one block of Winograd-transformed input may fill (it stays there
  /// while every output-channel panel runs over it): 384 KiB unless calibrated, 3/8 of Zen 5's
  /// 1 MiB L2. Not scaled with the L2: on an Intel Xeon with 2 MiB per core, 768 KiB blocks ran
  /// 5% slower (docs/performance.md).
  std::int64_t winograd_block_bytes = 384 * 1024;
  /// The largest output tile side the AVX2 Winograd forward may use: 4 (F(4x4, 3x3) where a row
  /// holds 4 or at least 8 tiles of 4 pixels, F(2x2, 3x3) elsewhere) or 2 (F(2x2, 3x3) always).
  /// F(4x4) does 4x fewer multiply-adds than a direct convolution instead of 2.25x, and rounds
  /// several times more (docs/performance.md). AVX-512 builds run F(2x2) whatever it says.
  int winograd_tile = 4;
  /// Where the channel crossovers came from: "built-in", "built-in for <CPU kind>", "calibration", the file's path, or
  /// the name of the variable read last.
  std::string source = "built-in";

  int winograd_min_channels_for(std::int64_t pixels) const { return winograd_min_channels[size_class(pixels)]; }
  int weight_gradient_winograd_min_channels_for(std::int64_t pixels) const {
    return weight_gradient_winograd_min_channels[size_class(pixels)];
  }
};

/// The choices progdiff_calibrate measured on a CPU kind the library has met, in place of the
/// build's built-in values on that kind (a calibration file still overrides them); false, with
/// `choices` untouched, on other CPUs and in builds without AVX-512, whose kernels they were not
/// measured for. docs/performance.md has each measurement and its A/B against the build's values.
inline bool measured_kind_choices(const CpuIdentity& cpu, KernelChoices& choices) {
#if defined(__AVX512F__)
  // AMD Zen 4 is the only family-25 core with AVX-512. Its half-rate 512-bit FMAs make Winograd
  // pay from 32 channels at every size: 0.94 of the training step's and 0.85 of DDIM's time with
  // the build's 48 (2026-12-08).
  if (cpu.vendor == "AuthenticAMD" && cpu.family == 25 && cpu.avx512f) {
    choices.winograd_min_channels = {32, 32, 32};
    choices.weight_gradient_winograd_min_channels = {16, 16, 48};
    choices.source = "built-in for AMD Zen 4";
    return true;
  }
  // The Intel Xeon of family 6, model 207: at 8x8 Winograd pays only from 96 channels (0.94 of
  // DDIM's time with the build's 48, 2026-12-05); its weight gradient was not measured.
  if (cpu.vendor == "GenuineIntel" && cpu.family == 6 && cpu.model == 207) {
    choices.winograd_min_channels = {96, 48, 48};
    choices.source = "built-in for Intel family 6 model 207";
    return true;
  }
#else
  (void)cpu;
  (void)choices;
#endif
  return false;
}

namespace detail {

/// A channel count `name` from text: a positive integer, or "never".
inline int parse_min_channels(const std::string& text, const std::string& where,
                              const char* name = "winograd_min_channels") {
  if (text == "never") return kWinogradNever;
  std::size_t used = 0;
  long value = 0;
  try {
    value = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 1 || value > kWinogradNever)
    throw ConfigError(where + ": " + name + " must be a positive whole number or \"never\", got \"" + text + "\"");
  return static_cast<int>(value);
}

/// An output tile side of the Winograd forward: 2 or 4.
inline int parse_winograd_tile(const std::string& text, const std::string& where) {
  if (text == "2" || text == "4") return text[0] - '0';
  throw ConfigError(where + ": winograd_tile must be 2 or 4, got \"" + text + "\"");
}

inline constexpr const char* kForwardKey = "winograd_min_channels_";
inline constexpr const char* kWeightGradientKey = "winograd_weight_gradient_min_channels_";

/// The size class a file key names after its prefix ("winograd_min_channels_16x16" -> 1 for
/// kForwardKey), -1 for another key.
inline int size_class_of_key(const std::string& key, const char* prefix) {
  for (int size = 0; size < KernelChoices::kSizeClasses; ++size)
    if (key == std::string(prefix) + KernelChoices::kSizeClassNames[size]) return size;
  return -1;
}

}  // namespace detail

/// The calibration file this machine's processes read: see the resolution order above. Empty when
/// $PROGDIFF_KERNEL_CHOICES is "none" or neither XDG_CACHE_HOME nor HOME is set.
inline std::filesystem::path kernel_choices_path(const CpuIdentity& cpu) {
  if (const char* explicit_path = std::getenv("PROGDIFF_KERNEL_CHOICES"))
    return std::string(explicit_path) == "none" ? std::filesystem::path() : std::filesystem::path(explicit_path);
  std::filesystem::path base;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    base = xdg;
  else if (const char* home = std::getenv("HOME"); home && *home)
    base = std::filesystem::path(home) / ".cache";
  else
    return {};
  return base / "progdiff" / "kernel-choices" / (cpu.key() + ".txt");
}

/// Reads a calibration file into `choices` (lines "key value"; '#' starts a comment). A file
/// measured on another CPU, an unknown key or a bad value is a ConfigError naming the file and line.
inline void read_kernel_choices(const std::filesystem::path& path, const CpuIdentity& cpu, KernelChoices& choices) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot read the kernel choices file " + path.string());
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = path.string() + ":" + std::to_string(number);
    std::istringstream fields(line.substr(0, line.find('#')));
    std::string key, value;
    if (!(fields >> key)) continue;
    std::getline(fields >> std::ws, value);
    while (!value.empty() && value.back() == ' ') value.pop_back();
    if (key == "cpu") {
      if (value != cpu.key())
        throw ConfigError(where + ": measured on the CPU \"" + value + "\", but this process runs on \"" + cpu.key() +
                          "\"; run progdiff_calibrate here or remove the file");
    } else if (const int size = detail::size_class_of_key(key, detail::kForwardKey); size >= 0) {
      choices.winograd_min_channels[std::size_t(size)] = detail::parse_min_channels(value, where);
      choices.source = path.string();
    } else if (const int wg_size = detail::size_class_of_key(key, detail::kWeightGradientKey); wg_size >= 0) {
      choices.weight_gradient_winograd_min_channels[std::size_t(wg_size)] =
          detail::parse_min_channels(value, where, "winograd_weight_gradient_min_channels");
      choices.source = path.string();
    } else if (key == "winograd_tile") {
      choices.winograd_tile = detail::parse_winograd_tile(value, where);
    } else if (key == "winograd_block_bytes") {
      std::size_t used = 0;
      long long bytes = 0;
      try {
        bytes = std::stoll(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != value.size() || value.empty() || bytes < 4096)
        throw ConfigError(where + ": winograd_block_bytes must be a whole number of at least 4096, got \"" + value +
                          "\"");
      choices.winograd_block_bytes = bytes;
    } else {
      throw ConfigError(
          where + ": unknown key \"" + key +
          "\" (known: cpu, winograd_min_channels_8x8, _16x16, _32x32, winograd_weight_gradient_min_channels_8x8, "
          "_16x16, _32x32, winograd_block_bytes, winograd_tile)");
    }
  }
}

/// Writes a calibration file for `cpu` (to a temporary file renamed into place, so a reader never
/// sees half of one); `comment` lines go first, each prefixed with '#'.
inline void write_kernel_choices(const std::filesystem::path& path, const CpuIdentity& cpu,
                                 const KernelChoices& choices, const std::string& comment) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  const std::filesystem::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    std::istringstream lines(comment);
    for (std::string line; std::getline(lines, line);) out << "# " << line << '\n';
    out << "cpu " << cpu.key() << '\n';
    const auto write_by_size = [&out](const char* prefix, const std::array<int, KernelChoices::kSizeClasses>& counts) {
      for (int size = 0; size < KernelChoices::kSizeClasses; ++size) {
        const int channels = counts[std::size_t(size)];
        out << prefix << KernelChoices::kSizeClassNames[size] << ' '
            << (channels == kWinogradNever ? std::string("never") : std::to_string(channels)) << '\n';
      }
    };
    write_by_size(detail::kForwardKey, choices.winograd_min_channels);
    write_by_size(detail::kWeightGradientKey, choices.weight_gradient_winograd_min_channels);
    out << "winograd_block_bytes " << choices.winograd_block_bytes << '\n';
    out << "winograd_tile " << choices.winograd_tile << '\n';
    if (!out.flush()) throw IoError("cannot write the kernel choices file " + temporary.string());
  }
  std::filesystem::rename(temporary, path);
}

/// The choices for this machine, resolved from scratch (kernel_choices() keeps the first result).
inline KernelChoices resolve_kernel_choices(const CpuIdentity& cpu) {
  KernelChoices choices;
  measured_kind_choices(cpu, choices);
  if (const auto path = kernel_choices_path(cpu); !path.empty() && std::filesystem::exists(path))
    read_kernel_choices(path, cpu, choices);
  if (const char* min_channels = std::getenv("PROGDIFF_WINOGRAD_MIN_CHANNELS")) {
    choices.winograd_min_channels.fill(detail::parse_min_channels(min_channels, "PROGDIFF_WINOGRAD_MIN_CHANNELS"));
    choices.source = "PROGDIFF_WINOGRAD_MIN_CHANNELS";
  }
  if (const char* min_channels = std::getenv("PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS")) {
    choices.weight_gradient_winograd_min_channels.fill(detail::parse_min_channels(
        min_channels, "PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS", "winograd_weight_gradient_min_channels"));
    choices.source = "PROGDIFF_WINOGRAD_WEIGHT_GRADIENT_MIN_CHANNELS";
  }
  if (const char* tile = std::getenv("PROGDIFF_WINOGRAD_TILE"))
    choices.winograd_tile = detail::parse_winograd_tile(tile, "PROGDIFF_WINOGRAD_TILE");
  return choices;
}

/// The choices every CPU kernel of this process uses, resolved on first use.
inline const KernelChoices& kernel_choices() {
  static const KernelChoices choices = resolve_kernel_choices(identify_cpu());
  return choices;
}

}  // namespace progdiff::backend::cpu

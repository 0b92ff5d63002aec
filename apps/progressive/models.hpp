#pragma once
// The model types and schedule that the main job (apps/progressive) and the checkpoint sampler
// (apps/sample_checkpoint) share.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#ifdef __CUDACC__
#include "progdiff/backend/cuda/cuda.cuh"
#endif
#include "progdiff/interop/diffusers_base.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/model/model.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/ema_weights.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/separate_experts.hpp"
#include "progdiff/unet/small_presets.hpp"
#include "progdiff/unet/unet.hpp"
#include "recipes.hpp"

namespace job {

namespace pd = progdiff;
namespace unet = progdiff::unet;
using Cpu = pd::backend::Cpu;

/// DDPM's linear beta schedule over 1000 steps (Ho et al. 2020): the default recipe's.
using Schedule = SimpleRecipe::Schedule;

/// The scale's nets with the options of a list appended (a recipe's, an architecture's).
template <class B, class List>
struct SmallNets;
template <class B, class... Extra>
struct SmallNets<B, OptionList<Extra...>> {
  using Net = unet::SmallGray32<unet::UNet, unet::OnBackend<B>, Extra...>;
  using Multi =
      unet::SmallGray32<unet::MultiDecoderUNet, unet::Decoders<unet::kRunTimeCount>, unet::OnBackend<B>, Extra...>;
  using Experts = unet::SeparateExperts<Net, unet::kRunTimeCount>;
};

template <class A, class C>
struct JoinOptions;
template <class... A, class... C>
struct JoinOptions<OptionList<A...>, OptionList<C...>> {
  using type = OptionList<A..., C...>;
};

/// The default scale (unet::SmallGray32): three levels (32, 16, 8 pixels), one residual block
/// per level, no attention, gray 32x32 images, no dropout (short runs do not overfit); the base
/// width is a run-time value (--channels). `B` is the back end the models run on, `R` the
/// training recipe (recipes.hpp), `A` the U-Net blocks. The shared-encoder and separate models
/// take their number of decoders (experts) from the grouper's groups at run time.
template <class B, class R, Arch A>
struct SmallScaleWith
    : SmallNets<B, typename JoinOptions<typename R::NetOptions, typename ArchOptions<A>::type>::type> {
  static constexpr const char* name = "small";
  using Recipe = R;
  static constexpr Arch arch = A;
};
/// The default recipe (DDPM's L_simple, linear schedule) and blocks.
template <class B>
using SmallScaleOn = SmallScaleWith<B, SimpleRecipe, Arch::Ddpm>;
using SmallScale = SmallScaleOn<Cpu>;

/// The papers' CIFAR-10 scale (DDPM's U-Net: 128 channels, levels 1-2-2-2, two residual blocks,
/// attention at 16x16, dropout 0.1; the multi-stage paper's encoder), on gray images.
template <class B>
struct PaperScaleOn {
  static constexpr const char* name = "paper";
  using Net = unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>,
                         unet::ImageChannels<1>, unet::BaseChannels<128>, unet::GroupNormGroups<32>,
                         unet::DropoutPercent<10>, unet::OnBackend<B>>;
  using Multi =
      unet::MultiDecoderUNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>,
                             unet::ImageChannels<1>, unet::BaseChannels<128>, unet::GroupNormGroups<32>,
                             unet::DropoutPercent<10>, unet::Decoders<unet::kRunTimeCount>, unet::OnBackend<B>>;
  using Experts = unet::SeparateExperts<Net, unet::kRunTimeCount>;
  using Recipe = SimpleRecipe;
  static constexpr Arch arch = Arch::Ddpm;
};
using PaperScale = PaperScaleOn<Cpu>;

/// Whether the diffusers UNet2DModel of --base-from `dir` has the paper scale's structure (false:
/// the small scale's). The widths are the folder's (block_out_channels), so any widths fit; when
/// the structure is neither scale's, a ConfigError names the config.json and lists, for each
/// scale, every key whose value it cannot hold and what it has instead.
inline bool base_is_paper_scale(const std::filesystem::path& dir) {
  const std::filesystem::path config = pd::interop::diffusers_unet_folder(dir) / "config.json";
  const std::array<std::string, 2> names{
      "the small scale (Levels<1, 2, 2>, ResBlocks<1>, no attention, 1 channel, 32x32)",
      "the paper scale (Levels<1, 2, 2, 2>, ResBlocks<2>, attention at 16x16, 1 channel, 32x32)"};
  return pd::interop::diffusers_fitting_type<SmallScale::Net, PaperScale::Net>(
             pd::interop::read_diffusers_unet_config(config), config.string(), names) == 1;
}

/// The back end a run uses (--backend). CUDA exists only in the programs nvcc compiles
/// (the *_cuda targets of a build configured with -DPROGDIFF_ENABLE_CUDA=ON).
enum class Device { Cpu, Cuda };

inline Device parse_device(const std::string& flag, const std::string& value) {
  if (value == "cpu") return Device::Cpu;
  if (value == "cuda") {
#ifdef __CUDACC__
    return Device::Cuda;
#else
    throw pd::ConfigError(flag +
                          " cuda: this program was built without the CUDA back end; build its _cuda target "
                          "(cmake -DPROGDIFF_ENABLE_CUDA=ON, or the cuda preset)");
#endif
  }
  throw pd::ConfigError(flag + ": unknown back end '" + value + "' (choose cpu or cuda)");
}

/// Whether a run on `device` can start; prints why not (the caller exits with 77, a skip).
inline bool device_present(Device device) {
#ifdef __CUDACC__
  if (device == Device::Cuda && pd::backend::Cuda::device_count() == 0) {
    std::fprintf(stderr, "skipped: --backend cuda, and no CUDA device is present\n");
    return false;
  }
#endif
  (void)device;
  return true;
}

/// Compares samples with the "samples" tensor of a safetensors file (of a run on another back
/// end, say): prints and returns the largest |difference| / max(1, |reference|), absolute for
/// pixels in [-1, 1] and relative for the large values an undertrained model draws (NaN counts
/// as infinite); a ShapeError naming the file when the shapes differ.
inline double compare_samples(const std::vector<float>& samples, const pd::Shape& shape,
                              const std::filesystem::path& path, double tolerance) {
  const auto theirs = pd::io::to_tensor<float>(pd::io::read_safetensors(path), "samples", shape).to_host();
  double worst = 0.0, sum = 0.0;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const double d = std::fabs(double(samples[i]) - double(theirs[i])) / std::max(1.0, std::fabs(double(theirs[i])));
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    sum += d;
  }
  std::printf("samples against %s: largest difference %.3e, mean %.3e (tolerance %.0e)\n", path.string().c_str(), worst,
              sum / static_cast<double>(samples.size()), tolerance);
  return worst;
}

/// The base widths of the decoders of a multi-stage model with `count` decoders and an encoder of
/// base width `base`: the multi-stage paper's CIFAR-10 proportions (decoders 192, 128, 16 for an
/// encoder of 128, widest for the cleanest interval), interpolated for other counts; rounded to a
/// multiple of 8 (of 16 above 64, so that its 16 GroupNorm groups divide it), at least 8.
inline std::vector<std::int64_t> decoder_bases(std::int64_t base, std::int64_t count) {
  std::vector<std::int64_t> out;
  for (std::int64_t k = 0; k < count; ++k) {
    const double p = count == 1 ? 0.5 : static_cast<double>(k) / static_cast<double>(count - 1);
    const double ratio = p <= 0.5 ? 1.5 + (1.0 - 1.5) * (p / 0.5) : 1.0 + (0.125 - 1.0) * ((p - 0.5) / 0.5);
    const double w = ratio * static_cast<double>(base);
    const std::int64_t step = w > 64 ? 16 : 8;
    out.push_back(std::max<std::int64_t>(8, step * std::llround(w / static_cast<double>(step))));
  }
  return out;
}

}  // namespace job

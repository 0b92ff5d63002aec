// The small U-Net presets (unet/small_presets.hpp), float on the CPU back end, compiled once for
// every program that links progdiff::precompiled (see progdiff/core/precompiled.hpp): each net,
// model::Progressive of it, stage-1 and stage-2 training on DDPM's schedule with the default
// objective, DDIM sampling and checkpoints. One unit for the three: the trainer's and the
// checkpoints' code they share is most of the cost (one unit 38 s, three units 25 s each).
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/unet/small_presets.hpp"
#include "progdiff/unet/unet.hpp"

// An explicit instantiation cannot name an alias: the nets' option lists are spelled out here and
// in unet/unet.hpp, which checks that they are the presets'.
namespace progdiff::unet {
template class UNet<Levels<1, 2>, ResBlocks<1>, AttentionAt<>, ImageSize<16>, ImageChannels<1>, BaseChannels<16>,
                    GroupNormGroups<8>, DropoutPercent<0>>;
template class UNet<Levels<1, 2, 2>, ResBlocks<1>, AttentionAt<>, ImageSize<32>, ImageChannels<1>, BaseChannels<32>,
                    GroupNormGroups<8>, DropoutPercent<0>>;
template class UNet<Levels<1, 2, 2, 2>, ResBlocks<2>, AttentionAt<16>, ImageSize<32>, ImageChannels<1>,
                    BaseChannels<128>, GroupNormGroups<32>, DropoutPercent<10>>;
}  // namespace progdiff::unet

// What the headers declare extern for a preset's net (model/progressive.hpp, which also declares
// its checkpoints' io::save_checkpoint and io::load_checkpoint, train/stage1.hpp, train/stage2.hpp,
// sample/ddim.hpp).
#define PROGDIFF_PRESET_INSTANCES(Net)                                                                               \
  template class progdiff::model::Progressive<Net>;                                                                  \
  namespace progdiff::train {                                                                                        \
  using Schedule1000 = schedule::Linear<1000>;                                                                       \
  template TrainReport train_stage1(model::Progressive<Net>&, const Schedule1000&, const data::ImageDataset&,        \
                                    const TrainOptions&, StepCallback);                                              \
  template TrainReport train_stage1(model::Progressive<Net>&, const Schedule1000&, const data::ImageDataset&,        \
                                    const TrainOptions&, const SimpleObjective&, StepCallback,                       \
                                    distributed::SingleProcess);                                                     \
  template model::Progressive<Net> train_stage2(model::Progressive<Net>&, group::Partition, const Schedule1000&,     \
                                                const data::ImageDataset&, const TrainOptions&,                      \
                                                const std::type_identity_t<GroupHook<Net>>&, TrainReport*,           \
                                                StepCallback);                                                       \
  template model::Progressive<Net> train_stage2(model::Progressive<Net>&, group::Partition, const Schedule1000&,     \
                                                const data::ImageDataset&, const TrainOptions&,                      \
                                                const SimpleObjective&, const std::type_identity_t<GroupHook<Net>>&, \
                                                TrainReport*, StepCallback, distributed::SingleProcess);             \
  template model::Progressive<Net> copy_into_groups(model::Progressive<Net>&, group::Partition, std::uint64_t,       \
                                                    const std::type_identity_t<GroupHook<Net>>&);                    \
  }                                                                                                                  \
  namespace progdiff::io {                                                                                           \
  template void save_checkpoint<model::Progressive<Net>, float, backend::Cpu>(                                       \
      const std::filesystem::path&, model::Progressive<Net>&, const ModelDescription&, const TrainingState&,         \
      const optim::AdamW<float, backend::Cpu>*, const optim::Ema<float, backend::Cpu>*);                             \
  template TrainingState load_checkpoint<model::Progressive<Net>, float, backend::Cpu>(                              \
      const std::filesystem::path&, model::Progressive<Net>&, const ModelDescription&,                               \
      optim::AdamW<float, backend::Cpu>*, optim::Ema<float, backend::Cpu>*);                                         \
  }                                                                                                                  \
  template progdiff::Tensor<float, progdiff::backend::Cpu> progdiff::sample::generate(                               \
      const progdiff::sample::Ddim&, progdiff::model::Progressive<Net>&, progdiff::Shape, std::uint64_t,             \
      std::uint64_t);

PROGDIFF_PRESET_INSTANCES(progdiff::unet::TinyUNet)
PROGDIFF_PRESET_INSTANCES(progdiff::unet::SmallUNet)
PROGDIFF_PRESET_INSTANCES(progdiff::unet::PaperUNet)

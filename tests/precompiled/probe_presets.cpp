// A first program's calls on a small preset (unet/small_presets.hpp): U-Net, progressive model,
// both training stages, DDIM and a checkpoint. Compiled with PROGDIFF_PRECOMPILED=1, this object
// must define none of the member functions and function templates the component holds for it
// (check_probe.cmake). A unit of its own: what GCC inlines depends on the whole unit, and
// probe.cpp's layers must stay inlined as they are.
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/unet/small_presets.hpp"
#include "progdiff/unet/unet.hpp"

namespace pd = progdiff;

double probe_presets(const pd::data::ImageDataset& data, const pd::group::Partition& partition) {
  using Net = pd::unet::TinyUNet;
  const pd::schedule::Linear<1000> schedule;
  pd::model::Progressive<Net> base(Net(Net::default_widths(), Net::default_config()), schedule.size());
  pd::Generator gen(1);
  base.initialize(gen);
  pd::train::TrainOptions options;
  const auto report = pd::train::train_stage1(base, schedule, data, options);
  auto grouped = pd::train::train_stage2(base, partition, schedule, data, options);
  pd::io::save_checkpoint("probe.safetensors", grouped, grouped.describe(), {});
  pd::io::load_checkpoint("probe.safetensors", grouped, grouped.describe());
  const auto x = pd::sample::Ddim::from_schedule(schedule, 5).sample(grouped, base.denoiser(0).input_shape(1), 1);
  return report.steps.back().loss + static_cast<double>(x.size());
}

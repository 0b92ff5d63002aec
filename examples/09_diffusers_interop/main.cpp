// diffusers models in and out of progdiff (docs/interop.md).
//
//   progdiff_example_09_diffusers_interop                      self-check: export a seeded model as a
//                                                              DDPM pipeline, import it back, compare
//                                                              outputs, sample with DDIM
//   progdiff_example_09_diffusers_interop check DIR IO         import the UNet2DModel of DIR and compare
//                                                              its outputs on IO's x, t with IO's y
//   progdiff_example_09_diffusers_interop sample DIR OUT.png [STEPS]
//                                                              DDIM samples from a pipeline folder
//   progdiff_example_09_diffusers_interop export OUT            a seeded progdiff model as OUT/pipeline, its
//                                                              copies per group as OUT/progressive,
//                                                              scheduler configs as OUT/schedulers/<name>,
//                                                              and a learned-variance twin (IDDPM: 2C
//                                                              outputs, cosine over 4000 steps) as
//                                                              OUT/learned_variance_pipeline
//
// The U-Net type is DDPM's CIFAR-10 structure (four levels, two ResBlocks each, attention at
// 16x16 of 32x32 images); widths are run-time values, so any UNet2DModel of that structure
// imports, google/ddpm-cifar10-32 included. Exit status 1 on a failed check.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/interop/diffusers_export.hpp"
#include "progdiff/interop/diffusers_import.hpp"
#include "progdiff/interop/diffusers_progressive.hpp"
#include "progdiff/io/image_grid.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/unet/unet.hpp"

namespace pd = progdiff;
namespace unet = progdiff::unet;
namespace interop = progdiff::interop;

using Net = unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>,
                       unet::BaseChannels<128>>;
// The same structure with IDDPM's learned variance: 2C outputs, the prediction then v.
using VarianceNet = unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>,
                               unet::BaseChannels<128>, unet::LearnedVariance>;

// A small model of the type: base width 8, 4 GroupNorm groups, weights from a seed.
template <class N = Net>
N seeded_net(std::uint64_t seed) {
  auto config = N::default_config();
  config.groups = 4;
  N net(N::default_widths(8), config);
  pd::Generator gen(seed);
  net.initialize(gen);
  net.set_training(false);
  return net;
}

pd::Tensor<float> eval(Net& net, const pd::Tensor<float>& x, const pd::Tensor<float>& t) {
  const pd::InferenceMode inference;
  return net.forward(x, t);
}

// max |a - b| / max |b|: the error on the scale of the reference.
double relative_error(const pd::Tensor<float>& a, const std::vector<double>& b) {
  const auto h = a.to_host();
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::abs(h[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

int check(const std::filesystem::path& dir, const std::filesystem::path& io_path) {
  auto imported = interop::import_diffusers_unet<Net>(dir);
  std::printf("imported %s: %lld parameters, widths %lld..%lld\n", imported.folder.string().c_str(),
              static_cast<long long>(imported.net.parameter_count()),
              static_cast<long long>(imported.config.block_out_channels.front()),
              static_cast<long long>(imported.config.block_out_channels.back()));
  const auto file = pd::io::read_safetensors(io_path);
  const auto x = pd::io::to_tensor<float>(file, "x"), t = pd::io::to_tensor<float>(file, "t");
  const double rel = relative_error(eval(imported.net, x, t), file.values<double>("y"));
  std::printf("max |progdiff - diffusers| / max |diffusers| = %.3g over %lld outputs (limit 1e-4)\n", rel,
              static_cast<long long>(x.numel()));
  return rel <= 1e-4 ? 0 : 1;
}

int sample(const std::filesystem::path& dir, const std::filesystem::path& out, int steps) {
  auto imported = interop::import_diffusers_unet<Net>(dir);
  if (!imported.schedule) {
    std::fprintf(stderr, "error: %s has no scheduler/scheduler_config.json\n", dir.string().c_str());
    return 1;
  }
  const auto& schedule = *imported.schedule;
  pd::model::Progressive<Net> model(std::move(imported.net), static_cast<std::int64_t>(schedule.size()),
                                    schedule.config().prediction_type);
  const auto ddim = pd::sample::Ddim::from_schedule(schedule, steps);
  const auto images = ddim.sample(model, model.denoiser(0).input_shape(16), /*seed=*/0);
  pd::io::write_image_grid(out, images);
  for (float v : images.to_host())
    if (!std::isfinite(v)) return 1;
  std::printf("wrote %s: 16 samples, %d DDIM steps\n", out.string().c_str(), steps);
  return 0;
}

// The scheduler configs the fixtures have diffusers load: one per beta kind and setting.
std::vector<std::pair<std::string, pd::schedule::ScheduleConfig>> scheduler_examples() {
  using K = pd::schedule::ScheduleKind;
  std::vector<std::pair<std::string, pd::schedule::ScheduleConfig>> out;
  pd::schedule::ScheduleConfig c;
  out.push_back({"linear_1000", c});
  c = {};
  c.kind = K::ScaledLinear, c.betas.beta_start = 0.00085, c.betas.beta_end = 0.012;
  c.timestep_spacing = pd::schedule::TimestepSpacing::Trailing;
  out.push_back({"scaled_linear_trailing", c});
  c = {};
  c.kind = K::Cosine, c.num_train_timesteps = 4000, c.prediction_type = pd::schedule::PredictionType::VPrediction;
  c.timestep_spacing = pd::schedule::TimestepSpacing::Linspace;
  out.push_back({"cosine_4000_v", c});
  c = {};
  c.num_train_timesteps = 500, c.betas.beta_start = 2e-4, c.betas.beta_end = 0.04, c.steps_offset = 1;
  out.push_back({"linear_500_offset", c});
  c = {};
  c.kind = K::Trained;
  for (int i = 0; i < 100; ++i) c.trained_betas.push_back(1e-3 + 0.2 * i * i / 9801.0);
  c.num_train_timesteps = 100;
  out.push_back({"trained_100", c});
  return out;
}

int export_all(const std::filesystem::path& out) {
  Net net = seeded_net(7);
  pd::schedule::ScheduleConfig linear;
  interop::export_diffusers_pipeline(net, linear, out / "pipeline");
  pd::Generator gen(8);
  auto progressive = pd::model::Progressive<Net>::copies_of(net, pd::group::Partition{{0, 400, 1000}, {}}, gen);
  interop::export_diffusers_progressive(progressive, out / "progressive", &linear);
  for (const auto& [name, config] : scheduler_examples())
    interop::write_json_file(out / "schedulers" / name / "scheduler_config.json",
                             interop::diffusers_scheduler_config(config));
  VarianceNet variance_net = seeded_net<VarianceNet>(9);
  pd::schedule::ScheduleConfig cosine;
  cosine.kind = pd::schedule::ScheduleKind::Cosine;
  cosine.num_train_timesteps = 4000;
  interop::export_diffusers_pipeline(variance_net, cosine, out / "learned_variance_pipeline");
  std::printf("exported %s (pipeline, progressive, schedulers, learned_variance_pipeline)\n", out.string().c_str());
  return 0;
}

// Export, import, compare (bit for bit: the same float32 weights), then sample.
int self_check() {
  const auto dir = std::filesystem::temp_directory_path() / "progdiff_example_09";
  std::filesystem::remove_all(dir);
  Net net = seeded_net(7);
  interop::export_diffusers_pipeline(net, pd::schedule::ScheduleConfig{}, dir);
  auto imported = interop::import_diffusers_unet<Net>(dir);
  pd::Generator gen(1);
  std::vector<float> noise(static_cast<std::size_t>(net.input_shape(2).numel()));
  for (auto& v : noise) v = gen.normal<float>();
  const auto x = pd::Tensor<float>::from_host(net.input_shape(2), noise);
  const auto t = pd::Tensor<float>::from_host(pd::Shape{2}, std::vector<float>{10.0f, 900.0f});
  const auto a = eval(net, x, t).to_host(), b = eval(imported.net, x, t).to_host();
  const bool same = a == b;
  std::printf("export -> import: outputs %s\n", same ? "identical" : "DIFFER");
  const int sampled = sample(dir, dir / "samples.png", 5);
  std::filesystem::remove_all(dir);
  return same && sampled == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) return self_check();
    if (args[0] == "check" && args.size() == 3) return check(args[1], args[2]);
    if (args[0] == "sample" && (args.size() == 3 || args.size() == 4))
      return sample(args[1], args[2], args.size() == 4 ? std::stoi(args[3]) : 50);
    if (args[0] == "export" && args.size() == 2) return export_all(args[1]);
    std::fprintf(stderr, "usage: %s [check DIR IO.safetensors | sample DIR OUT.png [STEPS] | export OUT]\n", argv[0]);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

// Samples a grid from a checkpoint the main job (apps/progressive) saved: a grouped
// model (per-group U-Nets, or a shared encoder with one decoder per group) rebuilt from the
// description stored in the checkpoint, with its EMA weights, sampled by a chosen sampler.
//
//   progdiff_sample_checkpoint run/stage2.safetensors --sampler dpm-solver --steps 20
//
// A checkpoint of another structure, or whose description differs from the model rebuilt
// from it, is refused with a message naming every key that differs. The program checks that
// the samples are finite and that the grid it wrote decodes; exit status 1 on a failure, 2 on
// bad flags, 77 (nothing to sample) when the checkpoint file does not exist.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/run_app.hpp"
#include "progdiff/io/image_grid.hpp"
#include "progdiff/io/png_decode.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/model/from_description.hpp"
#include "progdiff/sample/samplers.hpp"
#include "progressive/models.hpp"

namespace {

using namespace job;
namespace fs = std::filesystem;

struct Flags {
  fs::path checkpoint;
  std::string sampler = "ddim";
  std::int64_t steps = 25;
  std::int64_t count = 64;
  std::uint64_t seed = 1;
  fs::path out;  // empty: samples_<sampler>_<steps>_seed<seed>.png beside the checkpoint
  Device device = Device::Cpu;
  fs::path save_tensor;   // the samples as drawn, in a safetensors file ("samples")
  fs::path compare_with;  // a file of that kind to compare the samples with
  double tolerance = 1e-3;
};

/// The flags of argv (CLI11). Throws CLI::ParseError for what CLI11 checks (--help included) and
/// ConfigError, naming the flag, for the rest.
Flags parse(CLI::App& app, int argc, char** argv) {
  Flags f;
  std::string backend = "cpu";
  app.add_option("checkpoint", f.checkpoint, "a checkpoint progdiff_progressive saved (e.g. run/stage2.safetensors)")
      ->required();
  app.add_option("--sampler", f.sampler, "ddim, ddpm, dpm-solver (DPM-Solver++ 2M), euler or heun")
      ->check(CLI::IsMember({"ddim", "ddpm", "dpm-solver", "euler", "heun"}))
      ->capture_default_str();
  app.add_option("--steps", f.steps, "sampling steps (ddpm's variance needs no fewer than 2)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--count", f.count, "images in the grid")->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--seed", f.seed, "sampling seed")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--out", f.out,
                 "the PNG to write (default: samples_<sampler>_<steps>_seed<seed>.png beside the checkpoint)");
  app.add_option("--backend", backend, "cpu or cuda (in the _cuda build of this program)")->capture_default_str();
  app.add_option("--save-tensor", f.save_tensor,
                 "also write the samples as drawn (float, before the PNG's rounding) to a safetensors file, tensor "
                 "\"samples\"");
  app.add_option("--compare-with", f.compare_with,
                 "compare the samples with such a file (of another back end, say) and fail when an element "
                 "differs by more than the tolerance");
  app.add_option("--tolerance", f.tolerance, "the largest allowed |difference| / max(1, |theirs|) for --compare-with")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.parse(argc, argv);
  f.device = parse_device("--backend", backend);
  if (f.sampler == "ddpm" && f.steps < 2) throw pd::ConfigError("--steps: ddpm needs at least 2 steps");
  if (f.out.empty())
    f.out = f.checkpoint.parent_path() /
            ("samples_" + f.sampler + "_" + std::to_string(f.steps) + "_seed" + std::to_string(f.seed) + ".png");
  return f;
}

/// Samples `count` images from any sample::Denoiser with the chosen sampler.
template <class Model, class B = typename Model::backend_type>
pd::Tensor<float, B> draw(const Flags& f, Model& model, const Schedule& schedule) {
  const pd::Shape shape{f.count, 1, 32, 32};
  namespace s = pd::sample;
  if (f.sampler == "ddim") return s::Ddim::from_schedule(schedule, f.steps).sample<float, B>(model, shape, f.seed);
  if (f.sampler == "ddpm") return s::Ddpm::from_schedule(schedule, f.steps).sample<float, B>(model, shape, f.seed);
  if (f.sampler == "dpm-solver")
    return s::DpmSolverMultistep::from_schedule(schedule, f.steps).sample<float, B>(model, shape, f.seed);
  const auto plan = s::SigmaPlan::karras(s::alphas_cumprod(schedule), f.steps);
  if (f.sampler == "euler") return s::Euler(plan).sample<float, B>(model, shape, f.seed);
  return s::Heun(plan).sample<float, B>(model, shape, f.seed);
}

template <class Model>
void sample_and_write(const Flags& f, Model& model, const Schedule& schedule) {
  const bool ema = pd::train::load_ema_weights(f.checkpoint, model, schedule);
  std::printf("%s: %lld groups, %lld parameters, %s weights; sampling %lld images with %s, %lld steps, seed %llu\n",
              f.checkpoint.string().c_str(), static_cast<long long>(model.group_count()),
              static_cast<long long>(model.parameter_count()), ema ? "EMA" : "raw", static_cast<long long>(f.count),
              f.sampler.c_str(), static_cast<long long>(f.steps), static_cast<unsigned long long>(f.seed));
  const auto host = draw(f, model, schedule).to_host();
  for (float v : host)
    if (!std::isfinite(v)) throw std::runtime_error("a sampled pixel value is not finite");
  const auto x = pd::Tensor<float, Cpu>::from_host(pd::Shape{f.count, 1, 32, 32}, host);
  if (f.out.has_parent_path()) fs::create_directories(f.out.parent_path());
  pd::io::write_image_grid(f.out, x, {.columns = 8});
  const auto png = pd::io::read_png(f.out);
  std::printf("wrote %s (%d x %d)\n", f.out.string().c_str(), png.width, png.height);
  if (!f.save_tensor.empty()) {
    pd::io::SafetensorsFile file;
    pd::io::put_tensor(file, "samples", x);
    file.metadata = {{"sampler", f.sampler},
                     {"steps", std::to_string(f.steps)},
                     {"seed", std::to_string(f.seed)},
                     {"backend", f.device == Device::Cuda ? "cuda" : "cpu"}};
    pd::io::write_safetensors(f.save_tensor, file);
    std::printf("wrote %s\n", f.save_tensor.string().c_str());
  }
  if (!f.compare_with.empty()) {
    if (!(compare_samples(host, x.shape(), f.compare_with, f.tolerance) <= f.tolerance))
      throw std::runtime_error("the samples differ from " + f.compare_with.string() + " by more than the tolerance");
  }
}

template <class Scale>
void run_scale(const Flags& f, const pd::model::Description& d, const Schedule& schedule) {
  const std::string src = f.checkpoint.string();
  const std::string& kind = pd::model::description_value(d, "model.kind", src);
  if (kind == "progressive") {
    using Model = pd::model::Progressive<typename Scale::Net>;
    pd::Generator gen(0);
    Model model = Model::from_description(d, gen, pd::model::config_from_description(d, "group0.", src));
    return sample_and_write(f, model, schedule);
  }
  if (kind == "multi_decoder") {
    // The model type takes its number of decoders from the checkpoint's description.
    auto model = pd::model::multi_decoder_from_description<typename Scale::Multi>(d, src);
    return sample_and_write(f, model, schedule);
  }
  throw pd::ConfigError(src + ": model.kind '" + kind + "'; this program reads 'progressive' and 'multi_decoder'");
}

/// run_scale on the back end --backend chose.
template <template <class> class Scale>
void on_device(const Flags& f, const pd::model::Description& d, const Schedule& schedule) {
#ifdef __CUDACC__
  if (f.device == Device::Cuda) return run_scale<Scale<pd::backend::Cuda>>(f, d, schedule);
#endif
  run_scale<Scale<Cpu>>(f, d, schedule);
}

int run(const Flags& f) {
  if (!device_present(f.device)) return 77;
  if (!fs::exists(f.checkpoint)) {
    std::fprintf(stderr, "skipped: no checkpoint at %s (progdiff_progressive writes one)\n",
                 f.checkpoint.string().c_str());
    return 77;
  }
  const Schedule schedule;
  const std::string src = f.checkpoint.string();
  const pd::model::Description d = pd::io::read_safetensors(f.checkpoint).metadata;
  const std::string structure = pd::model::description_value(d, "model.structure", src);
  const std::string small = pd::model::unet_structure<typename SmallScale::Net::spec>();
  const std::string paper = pd::model::unet_structure<typename PaperScale::Net::spec>();
  if (structure == small)
    on_device<SmallScaleOn>(f, d, schedule);
  else if (structure == paper)
#ifdef PROGDIFF_APPS_SMALL_SCALE_ONLY
    throw pd::ConfigError(src +
                          ": a paper-scale checkpoint, and this build has the small scale only (a sanitized "
                          "test build, or a CUDA build configured with PROGDIFF_CUDA_APPS_PAPER_SCALE=OFF)");
#else
    on_device<PaperScaleOn>(f, d, schedule);
#endif
  else
    throw pd::ConfigError(src + ": the checkpoint's U-Net structure\n  '" + structure +
                          "'\nis neither the main job's default\n  '" + small + "'\nnor its paper scale\n  '" + paper +
                          "'");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Rebuilds the model a checkpoint of progdiff_progressive describes, loads its EMA weights and "
      "writes a grid of samples.",
      "progdiff_sample_checkpoint"};
  return apps::run_app(app, argc, argv, parse, run);
}

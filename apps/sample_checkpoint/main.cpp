// Samples a grid from a checkpoint the main job (apps/progressive) saved: a grouped
// model (per-group U-Nets, or a shared encoder with one decoder per group) rebuilt from the
// description stored in the checkpoint, with its EMA weights, sampled by a chosen sampler.
//
//   progdiff_sample_checkpoint run/stage2.safetensors --sampler dpm-solver --steps 20
//
// The training recipe (the job's --objective and --arch) is read from the checkpoint: an EDM
// model's description says model.prediction = edm_denoiser, a learned variance is named in
// model.structure, and DDPM++'s blocks hold a residual block where DDPM's downsampling is one
// convolution (tensors ...downsample.conv1.* against ...downsample.conv.*). A result.json of the
// same run beside the checkpoint must agree (its fields objective and arch). `--sampler recipe`
// (the default) samples as the job does: DDIM for simple, the strided learned-variance DDPM for
// hybrid, EDM's Heun for edm.
//
// A checkpoint of another structure, or whose description differs from the model rebuilt
// from it, is refused with a message naming every key that differs. The program checks that
// the samples are finite and that the grid it wrote decodes; exit status 1 on a failure, 2 on
// bad flags, 77 (nothing to sample) when the checkpoint file does not exist.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/run_app.hpp"
#include "progdiff/core/json_file.hpp"
#include "progdiff/io/image_grid.hpp"
#include "progdiff/io/png_decode.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/model/from_description.hpp"
#include "progdiff/model/vp_view_of_edm.hpp"
#include "progdiff/sample/samplers.hpp"
#include "progressive/models.hpp"

namespace {

using namespace job;
namespace fs = std::filesystem;

struct Flags {
  fs::path checkpoint;
  std::string sampler = "recipe";
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
  app.add_option("--sampler", f.sampler,
                 "recipe (the sampler the job used for the checkpoint's --objective: DDIM, the strided "
                 "learned-variance DDPM or EDM's Heun), ddim, ddpm (with a learned variance: the learned "
                 "variance), dpm-solver (DPM-Solver++ 2M), euler or heun")
      ->check(CLI::IsMember({"recipe", "ddim", "ddpm", "dpm-solver", "euler", "heun"}))
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

/// The recipe a checkpoint was trained with: the main job's --objective and --arch.
struct TrainedWith {
  ObjectiveKind objective = ObjectiveKind::Simple;
  Arch arch = Arch::Ddpm;
};

template <class E, std::size_t N>
const char* name_of(const std::array<std::pair<E, const char*>, N>& table, E value) {
  for (const auto& [v, name] : table)
    if (v == value) return name;
  return "?";
}

/// What the checkpoint records of its recipe (see the top of this file), checked against the
/// fields objective and arch of a result.json of the same run beside it. ConfigError naming the
/// file and the field when the checkpoint cannot tell or the two disagree.
TrainedWith trained_with(const fs::path& path, const pd::io::SafetensorsFile& file) {
  const std::string src = path.string();
  const pd::model::Description& d = file.metadata;
  const bool edm = pd::model::description_value(d, "model.prediction", src) == "edm_denoiser";
  const bool learned =
      pd::model::description_value(d, "model.structure", src).find(" variance=learned") != std::string::npos;
  if (edm && learned)
    throw pd::ConfigError(src +
                          ": model.prediction is edm_denoiser and model.structure names a learned variance; "
                          "no --objective of the main job trains that");
  TrainedWith r;
  r.objective = edm ? ObjectiveKind::Edm : learned ? ObjectiveKind::Hybrid : ObjectiveKind::Simple;
  bool convolution = false, residual = false;
  for (const auto& [name, record] : file.tensors) {
    if (name.rfind("model.", 0) != 0) continue;
    convolution = convolution || name.find(".downsample.conv.weight") != std::string::npos;
    residual = residual || name.find(".downsample.conv1.weight") != std::string::npos;
  }
  if (convolution == residual)
    throw pd::ConfigError(
        src + ": cannot tell the U-Net blocks (--arch) from the tensors: " + (convolution ? "both" : "neither") +
        " of model.<...>.downsample.conv.weight (ddpm) and model.<...>.downsample.conv1.weight "
        "(ddpmpp's residual downsampling) " +
        (convolution ? "are" : "is") + " present");
  r.arch = residual ? Arch::Ddpmpp : Arch::Ddpm;

  const fs::path result = path.parent_path() / "result.json";
  if (fs::exists(result)) {
    const nlohmann::json j = pd::read_json_file(result, "run record");
    auto agree = [&](const char* field, const char* ours, const std::string& evidence) {
      if (!j.contains(field)) return;  // a result.json of a version before --objective and --arch
      if (!j[field].is_string() || j[field].get<std::string>() != ours)
        throw pd::ConfigError(result.string() + ": field '" + field + "' is " + j[field].dump() + ", but " + src +
                              " was trained with " + field + " '" + ours + "' (" + evidence +
                              "); is the checkpoint of another run?");
    };
    agree("objective", name_of(kObjectiveNames, r.objective),
          edm       ? "its model.prediction is edm_denoiser"
          : learned ? "its model.structure names a learned variance"
                    : "its model.prediction is " + d.at("model.prediction") + " with C outputs");
    agree("arch", name_of(kArchNames, r.arch),
          residual ? "it holds DDPM++'s residual downsampling blocks" : "its downsampling is DDPM's convolution");
  }
  return r;
}

/// Samples `count` images with a variance-preserving sampler from any C-output sample::Denoiser.
template <class B, class Model, class S>
pd::Tensor<float, B> draw_vp(const Flags& f, Model& model, const S& schedule) {
  const pd::Shape shape{f.count, 1, 32, 32};
  namespace s = pd::sample;
  if (f.sampler == "ddim")
    return s::Ddim::from_schedule(schedule, f.steps).template sample<float, B>(model, shape, f.seed);
  if (f.sampler == "ddpm")
    return s::Ddpm::from_schedule(schedule, f.steps).template sample<float, B>(model, shape, f.seed);
  if (f.sampler == "dpm-solver")
    return s::DpmSolverMultistep::from_schedule(schedule, f.steps).template sample<float, B>(model, shape, f.seed);
  const auto plan = s::SigmaPlan::karras(s::alphas_cumprod(schedule), f.steps);
  if (f.sampler == "euler") return s::Euler(plan).template sample<float, B>(model, shape, f.seed);
  return s::Heun(plan).template sample<float, B>(model, shape, f.seed);
}

/// Samples `count` images from a model trained with `Recipe` (wrapped as it trains it).
template <class Recipe, class Model, class B = typename Model::backend_type>
pd::Tensor<float, B> draw(const Flags& f, Model& model, const typename Recipe::Schedule& schedule) {
  const pd::Shape shape{f.count, 1, 32, 32};
  namespace s = pd::sample;
  if (f.sampler == "recipe") return Recipe::template sample<float, B>(model, schedule, f.steps, shape, f.seed, 0);
  if constexpr (Recipe::kind == ObjectiveKind::Edm) {
    // Euler and Heun on EDM's own sigma ladder; the VP samplers through the grid's VP reading.
    if (f.sampler == "euler" || f.sampler == "heun") {
      const auto plan = s::SigmaPlan::edm_preconditioned(f.steps, Recipe::grid());
      if (f.sampler == "euler") return s::Euler(plan).template sample<float, B>(model, shape, f.seed);
      return s::EdmHeun(plan).template sample<float, B>(model, shape, f.seed);
    }
    pd::model::VpViewOfEdm<Model> view(model);
    return draw_vp<B>(f, view, schedule);
  } else if constexpr (Recipe::kind == ObjectiveKind::Hybrid) {
    // DDPM with the learned variance, strided as IDDPM samples; the others read the mean head.
    if (f.sampler == "ddpm")
      return s::LearnedVarianceDdpm::from_schedule(schedule, f.steps).template sample<float, B>(model, shape, f.seed);
    s::MeanOnly<Model> mean(model);
    return draw_vp<B>(f, mean, schedule);
  } else {
    return draw_vp<B>(f, model, schedule);
  }
}

template <class Recipe, class Model>
void sample_and_write(const Flags& f, Model& model, const typename Recipe::Schedule& schedule) {
  const bool ema = pd::train::load_ema_weights(f.checkpoint, model, schedule);
  const std::string sampler =
      f.sampler == "recipe" ? Recipe::sampler_name(f.steps) : f.sampler + ", " + std::to_string(f.steps) + " steps";
  std::printf("%s: %lld groups, %lld parameters, %s weights; sampling %lld images with %s, seed %llu\n",
              f.checkpoint.string().c_str(), static_cast<long long>(model.group_count()),
              static_cast<long long>(model.parameter_count()), ema ? "EMA" : "raw", static_cast<long long>(f.count),
              sampler.c_str(), static_cast<unsigned long long>(f.seed));
  const auto host = draw<Recipe>(f, model, schedule).to_host();
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
void run_scale(const Flags& f, pd::model::Description d) {
  using Recipe = typename Scale::Recipe;
  const std::string src = f.checkpoint.string();
  const auto schedule = Recipe::schedule();
  // An EDM checkpoint describes the preconditioned model (model.prediction edm_denoiser); the
  // network inside is rebuilt as the job builds it, with the default prediction label, and the
  // wrapper's description is what the loading compares with the checkpoint.
  if constexpr (Recipe::kind == ObjectiveKind::Edm) d["model.prediction"] = "epsilon";
  // EDM's sigma_data as the run trained with it (--sigma-data); the others have none.
  job::RecipeSettings settings;
  if constexpr (Recipe::kind == ObjectiveKind::Edm) {
    settings.sigma_data = pd::model::detail::described_real(d, "edm.sigma_data", src);
    if (!(settings.sigma_data > 0))
      throw pd::FormatError(src + ": edm.sigma_data '" + d.at("edm.sigma_data") + "' is not a positive number");
    // The network's noise input as trained (--edm-noise-label); the wrapper's description must
    // then match the checkpoint's.
    const std::string& label = pd::model::description_value(d, "edm.noise_label", src);
    if (label == "grid_timestep")
      settings.noise_label = pd::model::EdmNoiseLabel::GridTimestep;
    else if (label != "log_sigma_over_4")
      throw pd::FormatError(src + ": edm.noise_label '" + label +
                            "'; this program reads 'log_sigma_over_4' and 'grid_timestep'");
  }
  const std::string& kind = pd::model::description_value(d, "model.kind", src);
  if (kind == "progressive") {
    using Model = pd::model::Progressive<typename Scale::Net>;
    pd::Generator gen(0);
    auto model =
        Recipe::wrap(Model::from_description(d, gen, pd::model::config_from_description(d, "group0.", src)), settings);
    return sample_and_write<Recipe>(f, model, schedule);
  }
  if (kind == "multi_decoder") {
    // The model type takes its number of decoders from the checkpoint's description.
    auto model = Recipe::wrap(pd::model::multi_decoder_from_description<typename Scale::Multi>(d, src), settings);
    return sample_and_write<Recipe>(f, model, schedule);
  }
  throw pd::ConfigError(src + ": model.kind '" + kind + "'; this program reads 'progressive' and 'multi_decoder'");
}

/// run_scale on the back end --backend chose.
template <template <class> class Scale>
void on_device(const Flags& f, const pd::model::Description& d) {
#ifdef __CUDACC__
  if (f.device == Device::Cuda) return run_scale<Scale<pd::backend::Cuda>>(f, d);
#endif
  run_scale<Scale<Cpu>>(f, d);
}

/// The default recipe at the small or the paper scale, on either back end.
void run_default_recipe(const Flags& f, const pd::model::Description& d) {
  const std::string src = f.checkpoint.string();
  const std::string structure = pd::model::description_value(d, "model.structure", src);
  const std::string small = pd::model::unet_structure<typename SmallScale::Net::spec>();
  const std::string paper = pd::model::unet_structure<typename PaperScale::Net::spec>();
  if (structure == small)
    on_device<SmallScaleOn>(f, d);
  else if (structure == paper)
#ifdef PROGDIFF_APPS_SMALL_SCALE_ONLY
    throw pd::ConfigError(src +
                          ": a paper-scale checkpoint, and this build has the small scale only (a sanitized "
                          "test build, or a CUDA build configured with PROGDIFF_CUDA_APPS_PAPER_SCALE=OFF)");
#else
    on_device<PaperScaleOn>(f, d);
#endif
  else
    throw pd::ConfigError(src + ": the checkpoint's U-Net structure\n  '" + structure +
                          "'\nis neither the main job's default\n  '" + small + "'\nnor its paper scale\n  '" + paper +
                          "'");
}

#ifndef PROGDIFF_APPS_DEFAULT_RECIPE_ONLY
/// Another recipe: the small scale on the CPU, as the main job trains it.
template <class R, Arch A>
void run_recipe(const Flags& f, const pd::model::Description& d) {
  using Scale = SmallScaleWith<Cpu, R, A>;
  const std::string src = f.checkpoint.string();
  const std::string structure = pd::model::description_value(d, "model.structure", src);
  const std::string expected = pd::model::unet_structure<typename Scale::Net::spec>();
  if (structure != expected)
    throw pd::ConfigError(src + ": model.structure is\n  '" + structure + "'\nand --objective " +
                          name_of(kObjectiveNames, R::kind) + " trains the small scale only,\n  '" + expected + "'");
  run_scale<Scale>(f, d);
}
#endif

void run_other_recipe(const Flags& f, const pd::model::Description& d, TrainedWith r) {
  const std::string src = f.checkpoint.string();
  const std::string recipe =
      std::string("--objective ") + name_of(kObjectiveNames, r.objective) + " --arch " + name_of(kArchNames, r.arch);
#ifdef PROGDIFF_APPS_DEFAULT_RECIPE_ONLY
  (void)d;
  throw pd::ConfigError(src + ": trained with " + recipe +
                        ", and this build has the default recipe only (a sanitized test build)");
#else
  if (f.device != Device::Cpu)
    throw pd::ConfigError("--backend: " + src + " was trained with " + recipe +
                          ", which the main job trains and samples on the CPU only; use --backend cpu");
  switch (r.objective) {
    case ObjectiveKind::Simple:
      return run_recipe<SimpleRecipe, Arch::Ddpmpp>(f, d);  // the default blocks go to run_default_recipe
    case ObjectiveKind::Hybrid:
      return r.arch == Arch::Ddpm ? run_recipe<HybridRecipe, Arch::Ddpm>(f, d)
                                  : run_recipe<HybridRecipe, Arch::Ddpmpp>(f, d);
    case ObjectiveKind::Edm:
      return r.arch == Arch::Ddpm ? run_recipe<EdmRecipe, Arch::Ddpm>(f, d) : run_recipe<EdmRecipe, Arch::Ddpmpp>(f, d);
  }
#endif
}

int run(const Flags& f) {
  if (!device_present(f.device)) return 77;
  if (!fs::exists(f.checkpoint)) {
    std::fprintf(stderr, "skipped: no checkpoint at %s (progdiff_progressive writes one)\n",
                 f.checkpoint.string().c_str());
    return 77;
  }
  const pd::io::SafetensorsFile file = pd::io::read_safetensors(f.checkpoint);
  const TrainedWith r = trained_with(f.checkpoint, file);
  std::printf("%s: trained with --objective %s --arch %s\n", f.checkpoint.string().c_str(),
              name_of(kObjectiveNames, r.objective), name_of(kArchNames, r.arch));
  if (r.objective == ObjectiveKind::Simple && r.arch == Arch::Ddpm)
    run_default_recipe(f, file.metadata);
  else
    run_other_recipe(f, file.metadata, r);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Rebuilds the model a checkpoint of progdiff_progressive describes, loads its EMA weights and "
      "writes a grid of samples with the sampler of the recipe it was trained with, or another.",
      "progdiff_sample_checkpoint"};
  return apps::run_app(app, argc, argv, parse, run);
}

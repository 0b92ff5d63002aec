// The library's whole pipeline on the CUDA back end against the CPU back end, with the back end
// as the only template argument that differs: model::Progressive and model::IntervalRouted,
// train::Trainer through stage 1, stage 2 (with a pruning hook) and multi-stage training,
// prune::prune_unet / prune_to_flops with the magnitude, Taylor and random importance policies,
// tdc::run_tdc, the DDIM, DPM-Solver++ and Euler samplers, and the metrics (classifier
// forward, feature statistics, Frechet distance). Where no GPU is present it says so and exits
// with ctest's skip code.
//
// Tolerances, as max |gpu - cpu| / max(1, |cpu|) per element:
//   forward outputs and the first loss of a run 1e-4 (float sums in another order);
//   losses of later steps 1e-3 and weights after a few AdamW steps 2e-3 = 2 lr: one step moves
//   an element by at most lr, so a wrong update (of sign or size) over the run exceeds it, while
//   an element whose gradient is at rounding level may move the other way once;
//   pruned widths and kept channels exactly (the scores come from identical weights or from a
//   seed, so no ranking depends on rounding); pruned weights 1e-6 (copies);
//   samples after 5 steps of a trained model 1e-3; the Frechet distance 1e-3.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "../train_support.hpp"
#include "cuda_compare.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/group/optimal_denoiser_clustering.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/metrics/fashion_frechet.hpp"
#include "progdiff/model/model.hpp"
#include "progdiff/prune/importance_magnitude.hpp"
#include "progdiff/prune/importance_random.hpp"
#include "progdiff/prune/importance_taylor.hpp"
#include "progdiff/prune/prune_to_flops.hpp"
#include "progdiff/prune/prune_unet.hpp"
#include "progdiff/sample/samplers.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/train/multi_stage.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/train/stage2.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

using namespace progdiff;
using cuda_test::expect_close;
using cuda_test::expect_true;
using Cpu = backend::Cpu;
using Gpu = backend::Cuda;

namespace {

namespace fs = std::filesystem;

// 8x8 grey images, base 8, levels 1-2, attention at 4x4, no dropout (dropout masks agree across
// back ends, but a smaller model keeps the CPU half fast).
template <class B>
using Net =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<0>, unet::OnBackend<B>>;
template <class B>
using Multi = unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>,
                                     unet::ImageChannels<1>, unet::BaseChannels<8>, unet::GroupNormGroups<4>,
                                     unet::DropoutPercent<0>, unet::Decoders<2>, unet::OnBackend<B>>;
using Schedule = schedule::Linear<60>;
constexpr double kLr = 1e-3;
const Shape kImage{1, 1, 8, 8};

// Smooth 8x8 patterns in [-1, 1].
data::ImageDataset patterns(std::int64_t count, double phase) {
  data::ImageDataset d;
  d.count = count, d.channels = 1, d.height = 8, d.width = 8;
  for (std::int64_t i = 0; i < count; ++i) {
    d.labels.push_back(i % 3);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x)
        d.pixels.push_back(
            static_cast<float>(std::sin(0.7 * x + 0.3 * static_cast<double>(i) + phase) * std::cos(0.5 * y)));
  }
  return d;
}

train::TrainOptions quiet_options(std::int64_t steps, std::int64_t batch) {
  train::TrainOptions o;
  o.steps = steps;
  o.batch_size = batch;
  o.seed = 17;
  o.lr.lr = kLr;
  o.ema.decay = 0.9;
  o.progress.mode = train::ProgressOptions::Mode::Off;
  return o;
}

using train_test::all_weights;

std::vector<double> step_losses(const train::TrainReport& r) {
  std::vector<double> l;
  for (const auto& s : r.steps)
    for (double g : s.group_losses) l.push_back(g);
  return l;
}

std::vector<std::int64_t> flat_widths(const std::vector<unet::WidthTable>& tables) {
  std::vector<std::int64_t> out;
  for (const auto& t : tables)
    for (const auto& w : t.layers) out.push_back(w.channels);
  return out;
}

// What one back end computes; every field is compared between the two back ends.
struct Results {
  std::vector<double> stage1_losses, stage2_losses, multi_losses;
  std::vector<float> stage1_weights, stage2_weights, multi_weights, probe_output;
  std::vector<std::int64_t> stage2_widths, magnitude_widths, taylor_widths, random_widths, tdc_widths;
  std::vector<float> magnitude_weights, taylor_weights, random_weights, tdc_weights;
  std::vector<double> tdc_losses;
  std::vector<float> ddim, dpm, euler, multi_ddim, ddpm, heun, dpm_single;
  std::vector<double> cluster_similarities;  // Algorithm 1: S0 and S1 of every sample
  std::vector<std::int64_t> cluster_starts;  // and the partition it chose
  std::vector<float> logits, features;
  double frechet = 0.0;
};

template <class B>
Results run_everything(const fs::path& scratch) {
  using N = Net<B>;
  Results r;
  const Schedule schedule;
  const auto train_data = patterns(24, 0.0), eval_data = patterns(8, 1.3);
  Generator init(5);
  N net;
  net.initialize(init);

  // Pruning of the initial weights (identical on both back ends): magnitude to a FLOPs limit,
  // Taylor after one forward and backward, random scores to the widths of a FLOPs plan.
  const auto groups = prune::channel_groups(net);
  const prune::ChannelScores magnitude = prune::MagnitudeImportance{prune::Norm::l2}.scores(net, groups);
  const double base_flops = static_cast<double>(net.flops(kImage));
  {
    N pruned = prune::prune_to_flops(net, magnitude, 0.6 * base_flops);
    r.magnitude_widths = flat_widths({pruned.widths()});
    r.magnitude_weights = all_weights<float>(pruned);
    expect_true(std::string(B::name()) + ": prune_to_flops meets its limit", pruned.flops(kImage) <= 0.6 * base_flops);
  }
  {
    const auto x0 = Tensor<float, B>::from_host(Shape{4, 1, 8, 8}, cuda_test::random_values(256, 40));
    const std::vector<std::int64_t> t{3, 20, 41, 59};
    const std::vector<float> tf(t.begin(), t.end());
    nn::zero_grad(net);
    const auto out = net.forward(x0, Tensor<float, B>::from_host(Shape{4}, tf));
    r.probe_output = out.to_host();
    net.backward(Tensor<float, B>::from_host(out.shape(), cuda_test::random_values(256, 41)));
    prune::TaylorImportance taylor;
    taylor.observe(net, groups);
    N pruned = prune::prune_to_flops(net, taylor, 0.6 * base_flops);
    r.taylor_widths = flat_widths({pruned.widths()});
    r.taylor_weights = all_weights<float>(pruned);
    nn::zero_grad(net);
  }
  {
    // prune_unet itself, to the feasible widths of the magnitude plan, channels chosen at random
    const auto plan = prune::plan_widths_for_flops(groups, magnitude, 0.5 * base_flops);
    N pruned = prune::prune_unet(net, prune::RandomImportance{9}, std::span<const std::int64_t>(plan.widths));
    r.random_widths = flat_widths({pruned.widths()});
    r.random_weights = all_weights<float>(pruned);
  }

  // Stage 1: the unified model on every timestep.
  model::Progressive<N> base(std::move(net), Schedule::steps);
  r.stage1_losses = step_losses(train::train_stage1(base, schedule, train_data, quiet_options(3, 4)));
  r.stage1_weights = all_weights<float>(base);

  // Stage 2: two groups, the first pruned to 70% of the FLOPs by the initial magnitudes.
  const group::Partition partition{{0, 20, 60}, {0.7, 1.0}};
  const train::GroupHook<N> hook = [&](std::int64_t k, N& d) {
    if (k == 0) d = prune::prune_to_flops(d, magnitude, 0.7 * base_flops);
  };
  train::TrainReport stage2;
  auto grouped = train::train_stage2(base, partition, schedule, train_data, quiet_options(2, 4), hook, &stage2);
  r.stage2_losses = step_losses(stage2);
  r.stage2_weights = all_weights<float>(grouped);
  r.stage2_widths = flat_widths(grouped.widths());

  // The samplers on the progressive model (each sample routed to its group's denoiser).
  const Shape batch{3, 1, 8, 8};
  r.ddim = sample::Ddim::from_schedule(schedule, 5, 1.0).template sample<float, B>(grouped, batch, 11).to_host();
  r.dpm =
      sample::DpmSolverMultistep::from_schedule(schedule, 5).template sample<float, B>(grouped, batch, 12).to_host();
  r.euler = sample::Euler(sample::SigmaPlan::linspace(sample::alphas_cumprod(schedule), 5))
                .template sample<float, B>(grouped, batch, 13)
                .to_host();
  r.ddpm = sample::Ddpm::from_schedule(schedule, 5).template sample<float, B>(grouped, batch, 15).to_host();
  r.heun = sample::Heun(sample::SigmaPlan::karras(sample::alphas_cumprod(schedule), 3))
               .template sample<float, B>(grouped, batch, 16)
               .to_host();
  r.dpm_single =
      sample::DpmSolverSinglestep::from_schedule(schedule, 4).template sample<float, B>(grouped, batch, 17).to_host();

  // Algorithm 1 of the multi-stage paper: the optimal denoiser of the training images at
  // sampled timesteps against those at both ends of the grid, and the intervals it implies.
  {
    const group::OptimalDenoiser<B> denoiser(Tensor<float, B>::from_host(Shape{24, 64}, train_data.pixels));
    const group::OptimalDenoiserClustering<B> clustering{&denoiser, 48, 0.9, 0.1, 8};
    for (const auto& c : clustering.cluster(schedule).samples) {
      r.cluster_similarities.push_back(c.s0);
      r.cluster_similarities.push_back(c.s1);
    }
    r.cluster_starts = clustering.group(schedule).starts;
  }

  // Multi-stage: a shared encoder with a decoder per group, on mixed batches.
  {
    Generator g(12);
    Multi<B> multi(Multi<B>::default_widths(8, {8, 4}), Multi<B>::default_config());
    multi.initialize(g);
    model::IntervalRouted<Multi<B>> m(std::move(multi), partition);
    r.multi_losses = step_losses(train::train_multi_stage(m, schedule, train_data, quiet_options(2, 8)));
    r.multi_weights = all_weights<float>(m);
    r.multi_ddim = sample::Ddim::from_schedule(schedule, 5).template sample<float, B>(m, batch, 14).to_host();
  }

  // TDC: each group pruned to its budget by seeded random scores, then fine-tuned.
  {
    tdc::TdcOptions o;
    o.out_dir = scratch / B::name();
    fs::remove_all(o.out_dir);
    o.pruning = tdc::TdcPruning::Random;
    o.seed = 3;
    o.eval_samples = 8;
    o.eval_batch_size = 4;
    o.finetune = quiet_options(2, 4);
    auto tdc_result = tdc::run_tdc(base, partition, schedule, train_data, eval_data, o);
    expect_true(std::string(B::name()) + ": run_tdc assembled a model", tdc_result.model.has_value());
    if (tdc_result.model) {
      r.tdc_widths = flat_widths(tdc_result.model->widths());
      r.tdc_weights = all_weights<float>(*tdc_result.model);
    }
    for (const auto& g : tdc_result.report.groups) r.tdc_losses.push_back(g.finetuned_loss);
    fs::remove_all(o.out_dir);
  }

  // Metrics: a small classifier's logits and features, and the Frechet distance between the
  // training images and the DDIM samples.
  {
    metrics::ClassifierConfig c;
    c.stages = {{8, 2}, {16, 2}};
    c.groups = 4;
    c.classes = 3;
    metrics::FashionClassifier<float, B> classifier(c);
    Generator g(21);
    classifier.initialize(g);
    const auto images = metrics::dataset_images<float, B>(eval_data, 0, 8);
    r.logits = classifier.forward(images).to_host();
    r.features = classifier.features(images).to_host();
    const auto samples = Tensor<float, B>::from_host(batch, r.ddim);
    r.frechet = metrics::fashion_frechet_distance(classifier, train_data, samples, 5);
  }
  return r;
}

void compare(const Results& gpu, const Results& cpu) {
  expect_close("U-Net forward on a probe batch", gpu.probe_output, cpu.probe_output, 1e-4);
  expect_true("prune_to_flops (magnitude): the same widths", gpu.magnitude_widths == cpu.magnitude_widths);
  expect_close("prune_to_flops (magnitude): pruned weights", gpu.magnitude_weights, cpu.magnitude_weights, 1e-6);
  expect_true("prune_to_flops (Taylor): the same widths", gpu.taylor_widths == cpu.taylor_widths);
  expect_close("prune_to_flops (Taylor): pruned weights", gpu.taylor_weights, cpu.taylor_weights, 1e-6);
  expect_true("prune_unet (random): the same widths", gpu.random_widths == cpu.random_widths);
  expect_close("prune_unet (random): pruned weights", gpu.random_weights, cpu.random_weights, 1e-6);
  expect_close("stage 1: first loss", std::vector<double>(gpu.stage1_losses.begin(), gpu.stage1_losses.begin() + 1),
               std::vector<double>(cpu.stage1_losses.begin(), cpu.stage1_losses.begin() + 1), 1e-4);
  expect_close("stage 1: losses of 3 steps", gpu.stage1_losses, cpu.stage1_losses, 1e-3);
  expect_close("stage 1: weights after 3 steps", gpu.stage1_weights, cpu.stage1_weights, 2 * kLr);
  expect_true("stage 2: the same per-group widths (group 0 pruned)", gpu.stage2_widths == cpu.stage2_widths);
  expect_close("stage 2: group losses of 2 steps", gpu.stage2_losses, cpu.stage2_losses, 1e-3);
  expect_close("stage 2: weights after 2 steps", gpu.stage2_weights, cpu.stage2_weights, 2 * kLr);
  expect_close("Progressive + DDIM (eta 1, 5 steps)", gpu.ddim, cpu.ddim, 1e-3);
  expect_close("Progressive + DPM-Solver++ 2M (5 steps)", gpu.dpm, cpu.dpm, 1e-3);
  expect_close("Progressive + Euler (5 steps)", gpu.euler, cpu.euler, 1e-3);
  expect_close("Progressive + DDPM (5 steps)", gpu.ddpm, cpu.ddpm, 1e-3);
  expect_close("Progressive + Heun (3 steps, Karras sigmas)", gpu.heun, cpu.heun, 1e-3);
  expect_close("Progressive + single-step DPM-Solver (4 steps)", gpu.dpm_single, cpu.dpm_single, 1e-3);
  expect_close("Algorithm 1: similarities to both ends", gpu.cluster_similarities, cpu.cluster_similarities, 1e-4);
  expect_true("Algorithm 1: the same intervals", gpu.cluster_starts == cpu.cluster_starts);
  expect_close("multi-stage: losses of 2 steps", gpu.multi_losses, cpu.multi_losses, 1e-3);
  expect_close("multi-stage: weights after 2 steps", gpu.multi_weights, cpu.multi_weights, 2 * kLr);
  expect_close("IntervalRouted + DDIM (5 steps)", gpu.multi_ddim, cpu.multi_ddim, 1e-3);
  expect_true("run_tdc: the same pruned widths", gpu.tdc_widths == cpu.tdc_widths);
  expect_close("run_tdc: held-out losses after fine-tuning", gpu.tdc_losses, cpu.tdc_losses, 1e-3);
  expect_close("run_tdc: assembled weights", gpu.tdc_weights, cpu.tdc_weights, 2 * kLr);
  expect_close("classifier logits", gpu.logits, cpu.logits, 1e-4);
  expect_close("classifier features", gpu.features, cpu.features, 1e-4);
  expect_close("Frechet distance, data vs DDIM samples", std::vector<double>{gpu.frechet},
               std::vector<double>{cpu.frechet}, 1e-3);
}

}  // namespace

int main() {
  if (cuda_test::skip_without_device("models, trainers, pruning, TDC, samplers and metrics on the CUDA back end"))
    return cuda_test::kSkipped;
  try {
    const fs::path scratch = fs::temp_directory_path() / "progdiff_cuda_pipeline_test";
    const Results gpu = run_everything<Gpu>(scratch);
    const Results cpu = run_everything<Cpu>(scratch);
    compare(gpu, cpu);
  } catch (const std::exception& e) {
    std::printf("FAILED with an exception: %s\n", e.what());
    return 1;
  }
  return cuda_test::report();
}

// Whole models on the CUDA back end against the CPU back end: the same U-Net and
// multi-decoder U-Net (only the OnBackend option differs), trained for two AdamW steps with an
// EMA, then sampled with DDIM (eta 1, so the per-sample Philox noise is used) and the optimal
// denoiser of Prop. 1. Where no GPU is present it says so and exits with ctest's skip code.
//
// Tolerances, as max |gpu - cpu| / max(1, |cpu|) per element:
//   loss, forward outputs 1e-4; gradients 1e-3 (float sums in another order, over a
//   whole network); parameters and EMA weights after the steps 2e-4 = 0.2 lr: one AdamW
//   step moves an element by at most lr, so a wrong update direction (an error of about lr)
//   fails, while eps = 1e-6 keeps gradients at float noise level from amplifying;
//   DDIM samples after 5 steps 1e-3; the optimal denoiser 1e-4.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cuda_compare.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/group/optimal_denoiser.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/model/interval_routed.hpp"
#include "progdiff/nn/layer.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/optim/ema.hpp"
#include "progdiff/sample/samplers.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/unet/interval_model.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

using namespace progdiff;
using cuda_test::expect_close;
using Cpu = backend::Cpu;
using Gpu = backend::Cuda;

namespace {

// Small enough to run in seconds on the CPU, large enough to have every layer kind:
// 16x16 RGB images, base 8, levels 1-2, attention at 8x8, 4 groups, dropout 10%.
template <class B>
using Net = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                       unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::OnBackend<B>>;
template <class B>
using Multi =
    unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                           unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::Decoders<2>, unet::OnBackend<B>>;

const Shape kBatch{3, 3, 16, 16};
const std::vector<std::int64_t> kTimesteps[2] = {{10, 600, 999}, {420, 75, 880}};
constexpr double kLr = 1e-3;
const group::Partition kPartition{{0, 500, 1000}, {}};

// A single U-Net as a sampler's Denoiser (epsilon prediction).
template <class N>
struct NetDenoiser {
  N& net;
  Tensor<float, typename N::backend_type> predict(const Tensor<float, typename N::backend_type>& x,
                                                  std::span<const std::int64_t> t) {
    const std::vector<double> td(t.begin(), t.end());
    return net.forward(x, N::timestep_tensor(td));
  }
  schedule::PredictionType prediction_type() const { return schedule::PredictionType::Epsilon; }
};

template <class N>
auto forward(N& net, const Tensor<float, typename N::backend_type>& x, const std::vector<std::int64_t>& t) {
  const std::vector<float> tf(t.begin(), t.end());
  const auto tt = Tensor<float, typename N::backend_type>::from_host(Shape{std::int64_t(t.size())}, tf);
  if constexpr (requires { N::interval_count(); }) {
    std::vector<std::int64_t> k;
    for (auto s : t) k.push_back(kPartition.group_of(s));
    return net.forward(x, tt, k);
  } else {
    return net.forward(x, tt);
  }
}

struct Run {
  std::vector<double> losses;
  std::vector<std::vector<float>> first_grads, params, ema;
  std::vector<float> first_output, samples;
};

template <class N>
Run train_and_sample(N& net) {
  using B = typename N::backend_type;
  Run run;
  Generator init(7);
  net.initialize(init);
  optim::AdamW<float, B> optimizer({0.9, 0.999, 1e-6, 0.01});
  optim::Ema<float, B> ema({0.9});
  ema.initialize(net);
  const schedule::Linear<1000> schedule{};
  for (int step = 0; step < 2; ++step) {
    const auto x0 = Tensor<float, B>::from_host(kBatch, cuda_test::random_values(kBatch.numel(), 100 + step));
    Tensor<float, B> noise(kBatch);
    B::template normal<float>(noise.size(), 99, 5, std::uint64_t(step) * noise.size(), noise.data());
    const auto abar = loss::alpha_bars_at(schedule, kTimesteps[step]);
    const auto pair = loss::make_training_pair(x0, noise, abar, schedule::PredictionType::Epsilon);
    nn::zero_grad(net);
    const auto out = forward(net, pair.x_t, kTimesteps[step]);
    const auto loss = loss::weighted_mse(out, pair.target, pair.weights);
    net.backward(loss.grad);
    run.losses.push_back(loss.loss);
    if (step == 0) {
      run.first_output = out.to_host();
      net.visit_parameters([&](const std::string&, auto& p) { run.first_grads.push_back(p.grad.to_host()); },
                           std::string());
    }
    optimizer.step(net, kLr);
    ema.update(net);
  }
  net.visit_parameters([&](const std::string&, auto& p) { run.params.push_back(p.value.to_host()); }, std::string());
  for (const auto& [name, w] : ema.shadow()) run.ema.push_back(w.to_host());

  const auto ddim = sample::Ddim::from_schedule(schedule, 5, 1.0);
  if constexpr (requires { N::interval_count(); }) {
    model::IntervalRouted<N> denoiser(std::move(net), kPartition);
    run.samples = ddim.template sample<float, B>(denoiser, kBatch, 11).to_host();
  } else {
    NetDenoiser<N> denoiser{net};
    run.samples = ddim.template sample<float, B>(denoiser, kBatch, 11).to_host();
  }
  return run;
}

void compare(const std::string& name, const Run& gpu, const Run& cpu) {
  expect_close(name + " first forward output", gpu.first_output, cpu.first_output, 1e-4);
  expect_close(name + " losses of two steps", gpu.losses, cpu.losses, 1e-4);
  cuda_test::expect_true(name + " parameter count", gpu.params.size() == cpu.params.size() &&
                                                        gpu.first_grads.size() == cpu.first_grads.size() &&
                                                        gpu.ema.size() == cpu.ema.size());
  std::vector<float> g_gpu, g_cpu, p_gpu, p_cpu, e_gpu, e_cpu;
  for (std::size_t i = 0; i < cpu.first_grads.size() && i < gpu.first_grads.size(); ++i) {
    g_gpu.insert(g_gpu.end(), gpu.first_grads[i].begin(), gpu.first_grads[i].end());
    g_cpu.insert(g_cpu.end(), cpu.first_grads[i].begin(), cpu.first_grads[i].end());
  }
  for (std::size_t i = 0; i < cpu.params.size() && i < gpu.params.size(); ++i) {
    p_gpu.insert(p_gpu.end(), gpu.params[i].begin(), gpu.params[i].end());
    p_cpu.insert(p_cpu.end(), cpu.params[i].begin(), cpu.params[i].end());
  }
  for (std::size_t i = 0; i < cpu.ema.size() && i < gpu.ema.size(); ++i) {
    e_gpu.insert(e_gpu.end(), gpu.ema[i].begin(), gpu.ema[i].end());
    e_cpu.insert(e_cpu.end(), cpu.ema[i].begin(), cpu.ema[i].end());
  }
  expect_close(name + " every parameter gradient, step 1", g_gpu, g_cpu, 1e-3);
  expect_close(name + " parameters after 2 AdamW steps", p_gpu, p_cpu, 0.2 * kLr);
  expect_close(name + " EMA weights after 2 updates", e_gpu, e_cpu, 0.2 * kLr);
  expect_close(name + " DDIM (eta 1, 5 steps) samples", gpu.samples, cpu.samples, 1e-3);
}

void compare_optimal_denoiser() {
  const std::int64_t n = 700, d = 48, m = 37;  // m not a multiple of the block of 16 rows
  const auto data = cuda_test::random_values(std::size_t(n * d), 31);
  const auto x = cuda_test::random_values(std::size_t(m * d), 32, 0.5f);
  std::vector<double> scale(m), sigma(m);
  for (std::int64_t r = 0; r < m; ++r) {
    scale[r] = 0.3 + 0.6 * double(r) / double(m);
    sigma[r] = 0.05 + 2.0 * double(m - r) / double(m);
  }
  const group::OptimalDenoiser<Cpu> on_cpu(Tensor<float, Cpu>::from_host(Shape{n, d}, data), 16);
  const group::OptimalDenoiser<Gpu> on_gpu(Tensor<float, Gpu>::from_host(Shape{n, d}, data), 16);
  static_assert(group::DeviceOptimalDenoiser<Gpu, float> && !group::DeviceOptimalDenoiser<Cpu, float>);
  const auto eps_cpu = on_cpu(Tensor<float, Cpu>::from_host(Shape{m, d}, x), scale, sigma).to_host();
  const auto eps_gpu = on_gpu(Tensor<float, Gpu>::from_host(Shape{m, d}, x), scale, sigma).to_host();
  expect_close("OptimalDenoiser eq. 4 (700 points, 37 rows)", eps_gpu, eps_cpu, 1e-4);
}

}  // namespace

int main() {
  if (cuda_test::skip_without_device("U-Net training and sampling on the CUDA back end")) return cuda_test::kSkipped;
  try {
    {
      Net<Cpu> cpu;
      Net<Gpu> gpu;
      compare("UNet", train_and_sample(gpu), train_and_sample(cpu));
    }
    {
      Multi<Cpu> cpu(Multi<Cpu>::default_widths(8, {8, 4}), Multi<Cpu>::default_config());
      Multi<Gpu> gpu(Multi<Gpu>::default_widths(8, {8, 4}), Multi<Gpu>::default_config());
      compare("MultiDecoderUNet", train_and_sample(gpu), train_and_sample(cpu));
    }
    compare_optimal_denoiser();
  } catch (const std::exception& e) {
    std::printf("FAILED with an exception: %s\n", e.what());
    return 1;
  }
  return cuda_test::report();
}

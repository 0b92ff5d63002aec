// Training and sampling on the GPU: the same U-Net, loss, AdamW, EMA and DDIM sampler as on
// the CPU, with the back end as the only change (the `Device` alias below). Trains a small
// U-Net for a few hundred steps on 16x16 images of one bright square on a dark background,
// then draws samples with DDIM and checks that the loss fell and the samples are finite.
// Without a GPU it says so and exits with 77 (ctest's "skipped").
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <vector>

#include "progdiff/backend/cuda/cuda.cuh"
#include "progdiff/nn/layer.hpp"
#include "progdiff/sample/samplers.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/adamw.hpp"
#include "progdiff/train/diffusion_loss.hpp"
#include "progdiff/train/ema.hpp"
#include "progdiff/train/timestep_sampler.hpp"
#include "progdiff/unet/unet.hpp"

using namespace progdiff;

// The one line that picks the device: backend::Cpu runs the same program on the CPU.
using Device = backend::Cuda;

using Net =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
               unet::ImageChannels<1>, unet::BaseChannels<32>, unet::GroupNormGroups<8>, unet::OnBackend<Device>>;

// A batch of 16x16 images in [-1, 1]: a 5x5 square at a random place.
std::vector<float> squares(std::int64_t n, Generator& gen) {
  std::vector<float> img(static_cast<std::size_t>(n * 256), -1.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto r = static_cast<std::int64_t>(gen.below(12)), c = static_cast<std::int64_t>(gen.below(12));
    for (std::int64_t y = r; y < r + 5; ++y)
      for (std::int64_t x = c; x < c + 5; ++x) img[static_cast<std::size_t>(i * 256 + y * 16 + x)] = 1.0f;
  }
  return img;
}

struct NetDenoiser {
  Net& net;
  Tensor<float, Device> predict(const Tensor<float, Device>& x, std::span<const std::int64_t> t) {
    const std::vector<float> tf(t.begin(), t.end());
    return net.forward(x, Tensor<float, Device>::from_host(Shape{std::int64_t(t.size())}, tf));
  }
  schedule::PredictionType prediction_type() const { return schedule::PredictionType::Epsilon; }
};

int main() {
  if (Device::device_count() == 0) {
    std::printf("SKIPPED: this example needs a CUDA device and none is present.\n");
    return 77;
  }
  const std::int64_t batch = 64, steps = 300;
  const schedule::Linear<1000> schedule{};
  Net net;
  Generator gen(1);
  net.initialize(gen);
  train::AdamW<float, Device> optimizer;
  train::Ema<float, Device> ema({0.99});
  ema.initialize(net);
  Generator data(2), timesteps(3);
  double first = 0, last = 0;
  for (std::int64_t step = 0; step < steps; ++step) {
    const Shape shape{batch, 1, 16, 16};
    const auto x0 = Tensor<float, Device>::from_host(shape, squares(batch, data));
    Tensor<float, Device> noise(shape);
    Device::normal<float>(noise.size(), 4, 0, std::uint64_t(step) * noise.size(), noise.data());
    std::vector<std::int64_t> t(static_cast<std::size_t>(batch));
    for (auto& s : t) s = static_cast<std::int64_t>(timesteps.below(1000));
    const auto pair =
        train::make_training_pair(x0, noise, train::alpha_bars_at(schedule, t), schedule::PredictionType::Epsilon);
    nn::zero_grad(net);
    const std::vector<float> tf(t.begin(), t.end());
    const auto out = net.forward(pair.x_t, Tensor<float, Device>::from_host(Shape{batch}, tf));
    const auto loss = train::weighted_mse(out, pair.target, pair.weights);
    net.backward(loss.grad);
    optimizer.step(net, 2e-4);
    ema.update(net);
    // mean of the first and last 20 steps, so one noisy batch does not decide the check
    if (step < 20) first += loss.loss / 20;
    if (step >= steps - 20) last += loss.loss / 20;
    if (step % 50 == 0) std::printf("step %4lld  loss %.4f\n", static_cast<long long>(step), loss.loss);
  }
  ema.copy_to(net);
  NetDenoiser denoiser{net};
  const auto samples =
      sample::Ddim::from_schedule(schedule, 50).sample<float, Device>(denoiser, Shape{8, 1, 16, 16}, 5);
  const auto host = samples.to_host();
  bool finite = true;
  double mean = 0;
  for (float v : host) {
    finite = finite && std::isfinite(v);
    mean += v / double(host.size());
  }
  std::printf("loss: first 20 steps %.4f, last 20 steps %.4f; 8 DDIM samples, mean pixel %.3f\n", first, last, mean);
  const bool ok = finite && last < 0.7 * first;
  std::printf(ok ? "ok\n" : "FAILED: the loss did not fall by 30%% or a sample is not finite\n");
  return ok ? 0 : 1;
}

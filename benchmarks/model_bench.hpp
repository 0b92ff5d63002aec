#pragma once
// The two U-Nets the end-to-end benchmarks time, one training step (forward, loss, backward,
// AdamW) and DDIM sampling with them, shared by progdiff_bench (training_benchmark.cpp,
// sampling_benchmark.cpp) and progdiff_model_timing (model_timing.cpp). compare_pytorch_model.py
// builds the same two architectures in PyTorch and checks the parameter counts.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/memory_stats.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/nn/layer.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff::bench {

using Cpu = backend::Cpu;
using TensorF = Tensor<float, Cpu>;

/// The main job's default model (apps/progressive, SmallScale at its default width):
/// 1x32x32 images, 32 channels, multipliers 1-2-2, one ResBlock per encoder level, no attention,
/// 8 GroupNorm groups, no dropout.
using DefaultNet = unet::UNet<unet::Levels<1, 2, 2>, unet::ResBlocks<1>, unet::AttentionAt<>,
                              unet::SingleEncoderAttention, unet::ImageSize<32>, unet::ImageChannels<1>,
                              unet::BaseChannels<32>, unet::GroupNormGroups<8>, unet::DropoutPercent<0>>;

/// The CIFAR-size U-Net: 3x32x32, 64 channels, 1-2-2, two ResBlocks per level, one attention
/// block at 16x16 (the `cifar` model of compare_pytorch_model.py, three image channels, 6.14M parameters).
using CifarNet =
    unet::UNet<unet::Levels<1, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::SingleEncoderAttention,
               unet::ImageSize<32>, unet::ImageChannels<3>, unet::BaseChannels<64>, unet::DropoutPercent<0>>;

/// A diffusion training step of `Net` on a fixed batch x0: draws timesteps and noise, runs
/// forward, the epsilon MSE, backward and an AdamW update, as a training loop would.
template <class Net>
class TrainingStep {
 public:
  explicit TrainingStep(std::int64_t batch, std::uint64_t seed = 0)
      : gen_(seed), x0_(TensorF(net_.input_shape(batch))), noise_(TensorF(net_.input_shape(batch))) {
    net_.initialize(gen_);
    net_.set_training(true);
    fill_normal(x0_);
  }

  /// One step; returns the loss.
  double run() {
    const std::int64_t n = x0_.dim(0);
    std::vector<std::int64_t> t(static_cast<std::size_t>(n));
    for (auto& v : t) v = static_cast<std::int64_t>(gen_.below(static_cast<std::uint64_t>(schedule_.size())));
    fill_normal(noise_);
    const auto pair =
        loss::make_training_pair(x0_, noise_, loss::alpha_bars_at(schedule_, t), schedule::PredictionType::Epsilon);
    const std::vector<double> timesteps(t.begin(), t.end());
    const TensorF out = net_.forward(pair.x_t, timesteps);
    const auto loss = loss::weighted_mse(out, pair.target, pair.weights);
    nn::zero_grad(net_);
    net_.backward(loss.grad);
    optimizer_.step(net_, 2e-4);
    return loss.loss;
  }

  Net& net() { return net_; }

 private:
  void fill_normal(TensorF& x) {
    Cpu::normal<float>(x.size(), gen_.seed(), gen_.stream(), gen_.reserve(x.size()), x.data());
  }

  Net net_;
  Generator gen_;
  schedule::Linear<1000> schedule_;
  optim::AdamW<float, Cpu> optimizer_;
  TensorF x0_, noise_;
};

/// A plain U-Net as a sampler's Denoiser (epsilon prediction, integer timesteps).
template <class Net>
struct NetDenoiser {
  Net& net;
  TensorF predict(const TensorF& x, std::span<const std::int64_t> t) {
    const std::vector<double> steps(t.begin(), t.end());
    return net.forward(x, steps);
  }
  schedule::PredictionType prediction_type() const { return schedule::PredictionType::Epsilon; }
};

/// Deterministic DDIM (eta 0) over `steps` leading-spaced timesteps of DDPM's linear schedule.
template <class Net>
class DdimSampling {
 public:
  explicit DdimSampling(std::int64_t steps, std::uint64_t seed = 0)
      : sampler_(sample::Ddim::from_schedule(schedule::Linear<1000>(), steps)) {
    Generator gen(seed);
    net_.initialize(gen);
    net_.set_training(false);
  }
  TensorF run(std::int64_t batch, std::uint64_t seed = 1) {
    NetDenoiser<Net> denoiser{net_};
    return sampler_.sample<float, Cpu>(denoiser, net_.input_shape(batch), seed);
  }
  Net& net() { return net_; }

 private:
  Net net_;
  sample::Ddim sampler_;
};

}  // namespace progdiff::bench

// Times one U-Net layer forward and backward and prints JSON, for compare_pytorch.py:
//   progdiff_layer_timing <layer> <N> <C> <HW> <iterations>
// layer: conv3x3 | conv1x1 | groupnorm | silu | linear | downsample | upsample | attention |
//        resblock (C -> C, time embedding of 256) | temb (sinusoid of C, MLP to 4C; HW unused).
// Prints {"layer": ..., "forward_ms": [...], "backward_ms": [...]}, one entry per iteration
// after a warm-up iteration.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/nn/attention_block.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/downsample.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/res_block.hpp"
#include "progdiff/nn/silu.hpp"
#include "progdiff/nn/timestep_embedding.hpp"
#include "progdiff/nn/upsample.hpp"

namespace {

using progdiff::Shape;
using Cpu = progdiff::backend::Cpu;
using TensorF = progdiff::Tensor<float, Cpu>;
namespace nn = progdiff::nn;

double milliseconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// Times `forward()` and `backward(dy)` (dy = 0.25 everywhere, shaped as forward's result).
template <class Forward, class Backward>
void time_calls(const std::string& name, Forward forward, Backward backward, int iterations) {
  std::vector<double> fwd, bwd;
  for (int it = 0; it <= iterations; ++it) {
    TensorF y, dy;
    const double f = milliseconds_of([&] { y = forward(); });
    dy = TensorF::full(y.shape(), 0.25f);
    const double b = milliseconds_of([&] { backward(dy); });
    if (it == 0) continue;  // warm-up: buffers enter the cache, threads start
    fwd.push_back(f);
    bwd.push_back(b);
  }
  std::printf("{\"layer\": \"%s\", \"forward_ms\": [", name.c_str());
  for (std::size_t i = 0; i < fwd.size(); ++i) std::printf("%s%.4f", i ? ", " : "", fwd[i]);
  std::printf("], \"backward_ms\": [");
  for (std::size_t i = 0; i < bwd.size(); ++i) std::printf("%s%.4f", i ? ", " : "", bwd[i]);
  std::printf("]}\n");
}

template <class Layer>
void time_layer(const std::string& name, Layer& layer, const Shape& in, int iterations) {
  progdiff::Generator gen(1);
  layer.initialize(gen);
  const TensorF x = TensorF::full(in, 0.5f);
  time_calls(
      name, [&] { return layer.forward(x); }, [&](const TensorF& dy) { TensorF dx = layer.backward(dy); }, iterations);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s <layer> <N> <C> <HW> <iterations>\n", argv[0]);
    return 2;
  }
  const std::string layer = argv[1];
  const std::int64_t n = std::atoll(argv[2]), c = std::atoll(argv[3]), hw = std::atoll(argv[4]);
  const int iterations = std::atoi(argv[5]);
  const Shape image{n, c, hw, hw};
  if (layer == "conv3x3") {
    nn::Conv2d<float, Cpu> l(nn::Conv2dConfig{c, c, 3, 1, 1, true});
    time_layer(layer, l, image, iterations);
  } else if (layer == "conv1x1") {
    nn::Conv2d<float, Cpu> l(nn::Conv2dConfig{c, c, 1, 1, 0, true});
    time_layer(layer, l, image, iterations);
  } else if (layer == "resblock") {
    constexpr std::int64_t temb_channels = 256;
    nn::ResBlock<float, Cpu> l(nn::ResBlockConfig{c, c, temb_channels, 32, 1e-6});
    progdiff::Generator gen(1);
    l.initialize(gen);
    const TensorF x = TensorF::full(image, 0.5f), temb = TensorF::full(Shape{n, temb_channels}, 0.5f);
    time_calls(
        layer, [&] { return l.forward(x, temb); }, [&](const TensorF& dy) { auto g = l.backward(dy); }, iterations);
  } else if (layer == "temb") {
    nn::TimestepEmbedding<float, Cpu> l(nn::TimestepEmbeddingConfig{c, 4 * c, 4 * c});
    progdiff::Generator gen(1);
    l.initialize(gen);
    std::vector<float> steps(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < steps.size(); ++i) steps[i] = static_cast<float>(i * 997 % 1000);
    const TensorF t = TensorF::from_host(Shape{n}, steps);
    time_calls(
        layer, [&] { return l.forward(t); }, [&](const TensorF& dy) { l.backward(dy); }, iterations);
  } else if (layer == "groupnorm") {
    nn::GroupNorm<float, Cpu> l(nn::GroupNormConfig{32, c, 1e-5});
    time_layer(layer, l, image, iterations);
  } else if (layer == "silu") {
    nn::SiLU<float, Cpu> l;
    struct Wrapped {
      nn::SiLU<float, Cpu>& s;
      void initialize(progdiff::Generator&) {}
      TensorF forward(const TensorF& x) { return s.forward(x); }
      TensorF backward(const TensorF& dy) { return s.backward(dy); }
    } w{l};
    time_layer(layer, w, image, iterations);
  } else if (layer == "linear") {  // the time-embedding projection: [N, C] -> [N, C]
    nn::Linear<float, Cpu> l(nn::LinearConfig{c, c, true});
    time_layer(layer, l, Shape{n, c}, iterations);
  } else if (layer == "downsample") {
    nn::Downsample<float, Cpu> l(nn::DownsampleConfig{c, c});
    time_layer(layer, l, image, iterations);
  } else if (layer == "upsample") {
    nn::Upsample<float, Cpu> l(nn::UpsampleConfig{c, c});
    time_layer(layer, l, image, iterations);
  } else if (layer == "attention") {
    nn::AttentionBlock<float, Cpu> l(nn::AttentionBlockConfig{c, 1, 32, 1e-6});
    time_layer(layer, l, image, iterations);
  } else {
    std::fprintf(stderr, "unknown layer '%s'\n", layer.c_str());
    return 2;
  }
  return 0;
}

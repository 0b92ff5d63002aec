// Google Benchmark programs for the CUDA back end at the shapes of a 32x32 U-Net (DDPM's
// CIFAR-10 model: base 128, levels 1-2-2-2, batch 64): cuBLAS GEMM (FP32 and TF32), conv3x3
// forward and backward, GroupNorm, attention, SiLU, AdamW, Philox noise, the optimal
// denoiser, a whole U-Net training step and a DDIM sampling step. Each reports TFLOP/s,
// GB/s and the share of the H100 roofline time it reaches (roofline.hpp; on another GPU the
// share is against the H100's figures). Timing uses CUDA events on the back end's stream.
// Without a GPU the program says so and exits with 77.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "progdiff/backend/cuda/cuda.cuh"
#include "progdiff/group/optimal_denoiser.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/nn/attention_block.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/layer.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/optim/ema.hpp"
#include "progdiff/sample/samplers.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/unet/unet.hpp"
#include "roofline.hpp"

namespace {

using namespace progdiff;
using Gpu = backend::Cuda;
using bench::h100::Cost;
namespace h100 = bench::h100;

cudaStream_t stream() { return backend::cuda::Context::current().stream(); }

/// Times `body` with CUDA events (register with UseManualTime) after one warm-up call, and
/// reports the cost against the roofline at compute peak `peak`.
template <class F>
void run_gpu(benchmark::State& state, Cost cost, double peak, F&& body) {
  cudaEvent_t start, stop;
  PROGDIFF_CUDA_CHECK(cudaEventCreate(&start));
  PROGDIFF_CUDA_CHECK(cudaEventCreate(&stop));
  body();
  Gpu::synchronize();
  double total = 0;
  for (auto _ : state) {
    PROGDIFF_CUDA_CHECK(cudaEventRecord(start, stream()));
    body();
    PROGDIFF_CUDA_CHECK(cudaEventRecord(stop, stream()));
    PROGDIFF_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    PROGDIFF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms * 1e-3);
    total += ms * 1e-3;
  }
  const double per = total / double(state.iterations());
  state.counters["TFLOPs"] = cost.flops / per * 1e-12;
  state.counters["GBps"] = cost.bytes / per * 1e-9;
  state.counters["roofline_pct"] = 100.0 * cost.seconds(peak) / per;
  PROGDIFF_CUDA_CHECK(cudaEventDestroy(start));
  PROGDIFF_CUDA_CHECK(cudaEventDestroy(stop));
}

/// Turns TF32 tensor-core GEMM on for the benchmark's lifetime when `on`; returns the peak.
struct Tf32Scope {
  explicit Tf32Scope(bool on) : on_(on) { backend::cuda::Context::current().set_tf32(on); }
  ~Tf32Scope() { backend::cuda::Context::current().set_tf32(false); }
  double peak() const { return on_ ? h100::kTf32Flops : h100::kFp32Flops; }
  bool on_;
};

Tensor<float, Gpu> filled(Shape s, float v) {
  Tensor<float, Gpu> t(s);
  Gpu::fill<float>(t.data(), t.size(), v);
  return t;
}

Tensor<float, Gpu> noise(Shape s, std::uint64_t stream_id) {
  Tensor<float, Gpu> t(s);
  Gpu::normal<float>(t.size(), 1, stream_id, 0, t.data());
  return t;
}

// --- GEMM: args (size, tf32) ---
void BM_Gemm(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Tf32Scope tf32(state.range(1) != 0);
  auto a = noise(Shape{n, n}, 1), b = noise(Shape{n, n}, 2), c = filled(Shape{n, n}, 0);
  run_gpu(state, h100::gemm(n, n, n), tf32.peak(),
          [&] { Gpu::gemm<float>(Trans::No, Trans::No, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n); });
}
BENCHMARK(BM_Gemm)->Args({4096, 0})->Args({4096, 1})->Args({8192, 1})->UseManualTime()->Unit(benchmark::kMillisecond);

// --- conv3x3: args (batch, channels, side, tf32) ---
enum Pass { kForward, kBackwardData, kBackwardWeight };
template <Pass P>
void BM_Conv3x3(benchmark::State& state) {
  const std::int64_t n = state.range(0), c = state.range(1), s = state.range(2);
  const Tf32Scope tf32(state.range(3) != 0);
  const ConvGeometry g{n, c, s, s, c, 3, 3, 1, 1};
  auto x = noise(Shape{n, c, s, s}, 3), y = noise(Shape{n, c, s, s}, 4), w = noise(Shape{c, c, 3, 3}, 5),
       dw = filled(Shape{c, c, 3, 3}, 0);
  run_gpu(state, h100::conv3x3(n, c, c, s), tf32.peak(), [&] {
    if constexpr (P == kForward) Gpu::conv2d_forward<float>(g, x.data(), w.data(), y.data());
    if constexpr (P == kBackwardData) Gpu::conv2d_backward_data<float>(g, y.data(), w.data(), x.data());
    if constexpr (P == kBackwardWeight) Gpu::conv2d_backward_weight<float>(g, x.data(), y.data(), dw.data());
  });
}
void conv_shapes(benchmark::internal::Benchmark* b) {
  for (int tf32 : {0, 1})
    for (auto [c, s] : {std::pair{128, 32}, {256, 16}, {256, 8}}) b->Args({64, c, s, tf32});
  b->UseManualTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_Conv3x3<kForward>)->Apply(conv_shapes);
BENCHMARK(BM_Conv3x3<kBackwardData>)->Apply(conv_shapes);
BENCHMARK(BM_Conv3x3<kBackwardWeight>)->Apply(conv_shapes);

// --- GroupNorm (32 groups): args (batch, channels, side) ---
template <bool Backward>
void BM_GroupNorm(benchmark::State& state) {
  const std::int64_t n = state.range(0), c = state.range(1), s = state.range(2);
  nn::GroupNorm<float, Gpu> norm({32, c, 1e-6});
  const auto x = noise(Shape{n, c, s, s}, 6), dy = noise(Shape{n, c, s, s}, 7);
  const double e = double(x.size());
  if constexpr (Backward) {
    Cost cost = h100::group_norm_backward(e);  // timed with the forward that fills its cache
    cost.flops += h100::group_norm_forward(e).flops;
    cost.bytes += h100::group_norm_forward(e).bytes;
    run_gpu(state, cost, h100::kFp32Flops, [&] {
      norm.forward(x);
      norm.backward(dy);
    });
  } else {
    run_gpu(state, h100::group_norm_forward(e), h100::kFp32Flops, [&] { norm.forward(x); });
  }
}
BENCHMARK(BM_GroupNorm<false>)
    ->Args({64, 128, 32})
    ->Args({64, 256, 16})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GroupNorm<true>)->Args({64, 128, 32})->Args({64, 256, 16})->UseManualTime()->Unit(benchmark::kMicrosecond);

// --- AttentionBlock forward + backward (1 head, 32 groups): args (batch, channels, side, tf32) ---
void BM_Attention(benchmark::State& state) {
  const std::int64_t n = state.range(0), c = state.range(1), s = state.range(2);
  const Tf32Scope tf32(state.range(3) != 0);
  nn::AttentionBlock<float, Gpu> attn({c, 1, 32, 1e-6});
  Generator gen(3);
  attn.initialize(gen);
  const auto x = noise(Shape{n, c, s, s}, 8), dy = noise(Shape{n, c, s, s}, 9);
  const double l = double(s * s);
  Cost cost = h100::attention_core(n, c, s);
  const Cost proj = h100::gemm(4 * c, l, c);  // q, k, v and output projections
  cost.flops = 3 * (cost.flops + n * proj.flops);
  cost.bytes = 3 * (cost.bytes + n * proj.bytes);
  run_gpu(state, cost, tf32.peak(), [&] {
    attn.forward(x);
    attn.backward(dy);
  });
}
BENCHMARK(BM_Attention)->Args({64, 256, 16, 0})->Args({64, 256, 16, 1})->UseManualTime()->Unit(benchmark::kMillisecond);

// --- element-wise: SiLU, AdamW, Philox noise per sample ---
void BM_Silu(benchmark::State& state) {
  const auto x = noise(Shape{64, 128, 32, 32}, 10);
  auto y = filled(x.shape(), 0);
  run_gpu(state, h100::silu(double(x.size())), h100::kFp32Flops,
          [&] { Gpu::silu_forward<float>(x.size(), x.data(), y.data()); });
}
BENCHMARK(BM_Silu)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_AdamW(benchmark::State& state) {
  const std::int64_t p = 35'746'307;  // DDPM CIFAR-10 U-Net parameters
  auto w = noise(Shape{p}, 11), g = noise(Shape{p}, 12), m = filled(Shape{p}, 0), v = filled(Shape{p}, 0);
  const math::AdamHyper h{1e-4, 0.9, 0.999, 1e-8, 0.0};
  long long step = 0;
  run_gpu(state, h100::adamw(double(p)), h100::kFp32Flops,
          [&] { Gpu::adamw<float>(w.size(), w.data(), g.data(), m.data(), v.data(), h, ++step); });
}
BENCHMARK(BM_AdamW)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_NormalRows(benchmark::State& state) {
  const std::int64_t n = 64, d = 3 * 32 * 32;
  auto x = filled(Shape{n, d}, 0);
  std::vector<std::uint64_t> streams(n), offsets(n);
  for (std::int64_t i = 0; i < n; ++i) streams[i] = 1000 + i, offsets[i] = 7 * d;
  run_gpu(state, h100::philox_normal(double(n * d)), h100::kFp32Flops,
          [&] { Gpu::normal_rows<float>(n, d, 5, streams.data(), offsets.data(), x.data()); });
}
BENCHMARK(BM_NormalRows)->UseManualTime()->Unit(benchmark::kMicrosecond);

// --- optimal denoiser (Prop. 1 eq. 4): 128 rows against 60000 points of 784 (MNIST size) ---
void BM_OptimalDenoiser(benchmark::State& state) {
  const std::int64_t n = 60000, d = 784, m = 128;
  const Tf32Scope tf32(state.range(0) != 0);
  const group::OptimalDenoiser<Gpu> denoiser(noise(Shape{n, d}, 13), m);
  const auto x = noise(Shape{m, d}, 14);
  run_gpu(state, h100::optimal_denoiser(m, n, d), tf32.peak(), [&] { denoiser(x, 0.8, 0.6); });
}
BENCHMARK(BM_OptimalDenoiser)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond);

// --- whole U-Net: DDPM's CIFAR-10 model (35.7 M parameters, 12.4 GFLOP = 6.2 G multiply-adds per image) ---
using CifarNet = unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>,
                            unet::BaseChannels<128>, unet::OnBackend<Gpu>>;

Tensor<float, Gpu> timesteps(std::int64_t n, std::int64_t first) {
  std::vector<float> t(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) t[i] = float((first + 37 * i) % 1000);
  return Tensor<float, Gpu>::from_host(Shape{n}, t);
}

// Forward, loss, backward, AdamW and EMA: args (batch, tf32).
void BM_UNetTrainingStep(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Tf32Scope tf32(state.range(1) != 0);
  CifarNet net;
  Generator gen(1);
  net.initialize(gen);
  optim::AdamW<float, Gpu> optimizer;
  optim::Ema<float, Gpu> ema;
  ema.initialize(net);
  const Shape batch{n, 3, 32, 32};
  const auto x = noise(batch, 15), target = noise(batch, 16), t = timesteps(n, 3);
  const std::vector<double> weights(static_cast<std::size_t>(n), 1.0);
  Cost cost;
  cost.flops = 3.0 * double(net.flops(Shape{1, 3, 32, 32})) * double(n);
  cost.bytes = 0;  // compute-bound as a whole; the per-kernel benchmarks give the memory side
  run_gpu(state, cost, tf32.peak(), [&] {
    nn::zero_grad(net);
    const auto loss = loss::weighted_mse(net.forward(x, t), target, weights);
    net.backward(loss.grad);
    optimizer.step(net, 1e-4);
    ema.update(net);
  });
}
BENCHMARK(BM_UNetTrainingStep)->Args({64, 0})->Args({64, 1})->UseManualTime()->Unit(benchmark::kMillisecond);

struct NetDenoiser {
  CifarNet& net;
  Tensor<float, Gpu> predict(const Tensor<float, Gpu>& x, std::span<const std::int64_t> t) {
    const std::vector<float> tf(t.begin(), t.end());
    return net.forward(x, Tensor<float, Gpu>::from_host(Shape{std::int64_t(t.size())}, tf));
  }
  schedule::PredictionType prediction_type() const { return schedule::PredictionType::Epsilon; }
};

// One DDIM step (eta 1: model evaluation, per-sample noise, update): args (batch, tf32).
void BM_DdimStep(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Tf32Scope tf32(state.range(1) != 0);
  CifarNet net;
  Generator gen(2);
  net.initialize(gen);
  NetDenoiser denoiser{net};
  const auto ddim = sample::Ddim::from_schedule(schedule::Linear<1000>{}, 1000, 1.0);
  auto st = sample::start<sample::Ddim, float, Gpu>(ddim, Shape{n, 3, 32, 32}, 4);
  Cost cost;
  cost.flops = double(net.flops(Shape{1, 3, 32, 32})) * double(n);
  run_gpu(state, cost, tf32.peak(), [&] { sample::advance(ddim, denoiser, st); });
}
BENCHMARK(BM_DdimStep)->Args({64, 0})->Args({64, 1})->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  if (Gpu::device_count() == 0) {
    std::printf("SKIPPED: no CUDA device is present; the CUDA benchmarks were built but not run.\n");
    return 77;
  }
  cudaDeviceProp prop{};
  PROGDIFF_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, %.1f GiB; roofline_pct is against the H100 SXM figures of roofline.hpp\n", prop.name,
              prop.multiProcessorCount, double(prop.totalGlobalMem) / (1 << 30));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

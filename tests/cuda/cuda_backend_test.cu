// The CUDA back end against the CPU back end, op by op and layer by layer, on the same
// inputs. Where no GPU is present it says so and exits with ctest's skip code.
#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "cuda_compare.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cuda/cuda.cuh"
#include "progdiff/nn/attention_block.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/silu.hpp"
#include "progdiff/nn/timestep_embedding.hpp"
#include "progdiff/nn/upsample.hpp"

using namespace progdiff;
using cuda_test::expect_close;
using cuda_test::random_values;
using Cpu = backend::Cpu;
using Gpu = backend::Cuda;

namespace {

// Runs forward and backward of the same layer on both back ends with the same weights.
template <class B>
struct On {
  using type = B;
};

// `make(On<B>{})` builds the layer for back end B.
template <class Make>
void compare_layer(const std::string& name, Make make, Shape in) {
  auto cpu = make(On<Cpu>{});
  auto gpu = make(On<Gpu>{});
  std::uint64_t stream = 10;
  std::vector<std::pair<std::string, std::vector<float>>> weights;
  cpu.visit_parameters(
      [&](const std::string& n, auto& p) {
        auto v = random_values(p.value.size(), stream++);
        p.value = Tensor<float, Cpu>::from_host(p.value.shape(), v);
        weights.emplace_back(n, v);
      },
      "");
  std::size_t k = 0;
  gpu.visit_parameters([&](const std::string&,
                           auto& p) { p.value = Tensor<float, Gpu>::from_host(p.value.shape(), weights[k++].second); },
                       "");
  const auto x = random_values(std::size_t(in.numel()), 1);
  const auto y_cpu = cpu.forward(Tensor<float, Cpu>::from_host(in, x));
  const auto y_gpu = gpu.forward(Tensor<float, Gpu>::from_host(in, x));
  expect_close(name + " forward", y_gpu.to_host(), y_cpu.to_host(), 1e-4);
  const auto dy = random_values(y_cpu.size(), 2);
  const auto dx_cpu = cpu.backward(Tensor<float, Cpu>::from_host(y_cpu.shape(), dy));
  const auto dx_gpu = gpu.backward(Tensor<float, Gpu>::from_host(y_cpu.shape(), dy));
  expect_close(name + " input gradient", dx_gpu.to_host(), dx_cpu.to_host(), 1e-4);
  std::vector<std::vector<float>> grads;
  cpu.visit_parameters([&](const std::string&, auto& p) { grads.push_back(p.grad.to_host()); }, "");
  k = 0;
  gpu.visit_parameters(
      [&](const std::string& n, auto& p) { expect_close(name + " d" + n, p.grad.to_host(), grads[k++], 1e-3); }, "");
}

// Runs `op` on the CPU and the CUDA back end with the same host inputs; op(On<B>, inputs...)
// returns the output as a host vector.
template <class Op>
void compare_op(const std::string& name, double tol, Op op) {
  expect_close(name, op(On<Gpu>{}), op(On<Cpu>{}), tol);
}

template <class B>
Tensor<float, B> on(const std::vector<float>& v) {
  return Tensor<float, B>::from_host(Shape{static_cast<std::int64_t>(v.size())}, v);
}

void compare_kernels() {
  const auto a = random_values(5003, 3), b = random_values(5003, 4), c = random_values(5003, 5);
  // GEMM: every transposition, strided batches, leading dimensions larger than the rows.
  for (int t = 0; t < 4; ++t) {
    const Trans ta = t & 1 ? Trans::Yes : Trans::No, tb = t & 2 ? Trans::Yes : Trans::No;
    compare_op("gemm_strided_batched ta=" + std::to_string(t & 1) + " tb=" + std::to_string(t >> 1), 1e-5, [&](auto o) {
      using B = typename decltype(o)::type;
      auto x = on<B>(a), y = on<B>(b), z = on<B>(c);
      // m = 7, n = 9, k = 11; lda = ldb = 13, ldc = 10; 3 batches
      B::template gemm_strided_batched<float>(ta, tb, 7, 9, 11, 0.5f, x.data(), 13, 150, y.data(), 13, 160, 0.25f,
                                              z.data(), 10, 80, 3);
      return z.to_host();
    });
  }
  compare_op("axpy, add, mul, scale", 1e-6, [&](auto o) {
    using B = typename decltype(o)::type;
    auto x = on<B>(a), y = on<B>(b), z = on<B>(c);
    B::template axpy<float>(x.size(), 0.3f, x.data(), y.data());
    B::template mul<float>(x.size(), y.data(), z.data(), z.data());
    B::template add<float>(x.size(), x.data(), z.data(), z.data());
    B::template scale<float>(x.size(), -1.5f, z.data());
    return z.to_host();
  });
  compare_op("sum, dot (in double)", 1e-9, [&](auto o) {
    using B = typename decltype(o)::type;
    auto x = on<B>(a), y = on<B>(b);
    return std::vector<double>{B::template sum<float>(x.size(), x.data()),
                               B::template dot<float>(x.size(), x.data(), y.data())};
  });
  compare_op("all_finite on finite, inf and nan", 0.0, [&](auto o) {
    using B = typename decltype(o)::type;
    auto x = on<B>(a);
    std::vector<float> r{float(B::template all_finite<float>(x.size(), x.data()))};
    B::template fill<float>(x.data() + 4000, 1, INFINITY);
    r.push_back(float(B::template all_finite<float>(x.size(), x.data())));
    B::template fill<float>(x.data() + 4000, 1, NAN);
    r.push_back(float(B::template all_finite<float>(x.size(), x.data())));
    return r;
  });
  compare_op("copy_2d, add_2d (channel slices)", 1e-6, [&](auto o) {
    using B = typename decltype(o)::type;
    auto x = on<B>(a), y = on<B>(b);
    B::template copy_2d<float>(40, 30, x.data(), 50, y.data(), 45);
    B::template add_2d<float>(40, 20, x.data() + 7, 60, y.data() + 3, 45);
    return y.to_host();
  });
  compare_op("add_sample_channel, sample_channel_sum", 1e-5, [&](auto o) {
    using B = typename decltype(o)::type;
    auto x = on<B>(a), e = on<B>(b);  // [4, 25, 50]
    B::template add_sample_channel<float>(4, 25, 50, e.data(), x.data());
    B::template add_channel_bias<float>(4, 25, 50, e.data() + 200, x.data());
    B::template sample_channel_sum<float>(4, 25, 50, x.data(), e.data());
    B::template channel_bias_grad<float>(4, 25, 50, x.data(), e.data() + 100);
    return e.to_host();
  });
  compare_op("upsample_nearest2x forward and backward", 1e-6, [&](auto o) {
    using B = typename decltype(o)::type;
    auto x = on<B>(a), y = on<B>(std::vector<float>(4 * 5000));  // [10, 5, 100] -> [10, 10, 200]
    B::template upsample_nearest2x_forward<float>(10, 5, 100, x.data(), y.data());
    B::template axpy<float>(5000, 1.0f, x.data(), y.data());  // make the four copies differ
    B::template upsample_nearest2x_backward<float>(10, 5, 100, y.data(), x.data());
    return x.to_host();
  });
  compare_op("softmax_rows forward and backward", 1e-5, [&](auto o) {
    using B = typename decltype(o)::type;
    auto x = on<B>(a), y = on<B>(b), dy = on<B>(c);  // 41 rows of 122
    B::template softmax_rows<float>(41, 122, 0.7f, x.data(), y.data());
    B::template softmax_rows_backward<float>(41, 122, 0.7f, y.data(), dy.data(), x.data());
    auto r = y.to_host();
    const auto dx = x.to_host();
    r.insert(r.end(), dx.begin(), dx.end());
    return r;
  });
  compare_op("timestep_embedding (odd dim)", 1e-6, [&](auto o) {
    using B = typename decltype(o)::type;
    auto t = on<B>(std::vector<float>{0, 1, 17, 250, 999});
    Tensor<float, B> e(Shape{5, 33});
    B::template timestep_embedding<float>(5, 33, t.data(), e.data(), 10000.0, 1.0);
    return e.to_host();
  });
  // Philox draws must be bit-identical on both back ends (tolerance 0): a sample's noise may not
  // depend on where it is drawn, so a GPU run reproduces a CPU run's seed exactly.
  compare_op("dropout p = 0.3 (Philox mask, counter offset)", 0.0, [&](auto o) {
    using B = typename decltype(o)::type;
    auto x = on<B>(a), y = on<B>(b);
    B::template dropout<float>(x.size(), 0.3, 9, 4, 123, x.data(), y.data());  // counters from 123
    return y.to_host();
  });
  compare_op("Philox normal noise", 0.0, [&](auto o) {
    using B = typename decltype(o)::type;
    Tensor<float, B> noise(Shape{4097});
    B::template normal<float>(noise.size(), 7, 3, 11, noise.data());
    return noise.to_host();
  });
  compare_op("normal_rows (per-sample streams, one launch)", 0.0, [&](auto o) {
    using B = typename decltype(o)::type;
    Tensor<float, B> noise(Shape{3, 1001});
    const std::uint64_t streams[3] = {5, 1ull << 40, 5}, offsets[3] = {0, 3003, 77};
    B::template normal_rows<float>(3, 1001, 12, streams, offsets, noise.data());
    return noise.to_host();
  });
  compare_op("weighted_sum (sampler update, aliased output)", 1e-6, [&](auto o) {
    using B = typename decltype(o)::type;
    auto x = on<B>(a), y = on<B>(b), z = on<B>(c);  // 5 rows of 1000 (+3 unused)
    std::vector<double> w(5 * 6);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.1 * double(i % 7) - 0.25;
    const auto weights = Tensor<double, B>::from_host(Shape{5, 6}, w);
    B::template weighted_sum<float>(5, 1000, weights.data(), {x.data(), nullptr, y.data(), z.data(), nullptr, nullptr},
                                    x.data());
    return x.to_host();
  });
  compare_op("adamw (3 steps, weight decay)", 1e-6, [&](auto o) {
    using B = typename decltype(o)::type;
    auto p = on<B>(a), g = on<B>(b), m = on<B>(std::vector<float>(a.size())), v = on<B>(std::vector<float>(a.size()));
    const math::AdamHyper h{1e-2, 0.9, 0.999, 1e-8, 0.05};
    for (long long step = 1; step <= 3; ++step)
      B::template adamw<float>(p.size(), p.data(), g.data(), m.data(), v.data(), h, step);
    auto r = p.to_host();
    const auto mv = m.to_host(), vv = v.to_host();
    r.insert(r.end(), mv.begin(), mv.end());
    r.insert(r.end(), vv.begin(), vv.end());
    return r;
  });
}

void compare_tf32() {
  // TF32 keeps 10 mantissa bits: about 1e-3 relative error per product, less after summing.
  const auto a = random_values(64 * 96, 6), b = random_values(96 * 80, 7);
  const auto ref = [&] {
    auto x = on<Cpu>(a), y = on<Cpu>(b);
    Tensor<float, Cpu> z(Shape{64 * 80});
    Cpu::gemm<float>(Trans::No, Trans::No, 64, 80, 96, 1.0f, x.data(), 96, y.data(), 80, 0.0f, z.data(), 80);
    return z.to_host();
  }();
  auto x = on<Gpu>(a), y = on<Gpu>(b);
  Tensor<float, Gpu> z(Shape{64 * 80});
  backend::cuda::Context::current().set_tf32(true);
  Gpu::gemm<float>(Trans::No, Trans::No, 64, 80, 96, 1.0f, x.data(), 96, y.data(), 80, 0.0f, z.data(), 80);
  backend::cuda::Context::current().set_tf32(false);
  expect_close("gemm with TF32 tensor cores (k = 96)", z.to_host(), ref, 2e-2);
}

}  // namespace

int main() {
  // The error path needs no device: a failing call names itself, the file and the line.
  try {
    PROGDIFF_CUDA_CHECK(cudaErrorInvalidValue);
    cuda_test::expect_true("a failed CUDA call throws", false);
  } catch (const IoError& e) {
    const std::string m = e.what();
    cuda_test::expect_true("a failed CUDA call names the call, file and line: " + m.substr(0, 40) + "...",
                           m.find("cudaErrorInvalidValue failed at") == 0 &&
                               m.find("cuda_backend_test.cu:") != std::string::npos &&
                               m.find("invalid argument") != std::string::npos);
  }
  if (cuda_test::failures) return cuda_test::report();
  if (cuda_test::skip_without_device("CUDA kernels against the CPU back end")) return cuda_test::kSkipped;
  try {
    compare_kernels();
    compare_tf32();
    auto conv = [](nn::Conv2dConfig c) {
      return [c](auto on) { return nn::Conv2d<float, typename decltype(on)::type>(c); };
    };
    compare_layer("Conv2d 3x3", conv({5, 7, 3, 1, 1, true}), Shape{3, 5, 9, 6});
    compare_layer("Conv2d 3x3 stride 2", conv({4, 6, 3, 2, 1, true}), Shape{2, 4, 8, 8});
    compare_layer("Conv2d 1x1", conv({6, 3, 1, 1, 0, true}), Shape{2, 6, 5, 7});
    compare_layer(
        "GroupNorm",
        [](auto on) {
          return nn::GroupNorm<float, typename decltype(on)::type>({3, 9, 1e-5});
        },
        Shape{2, 9, 5, 4});
    compare_layer(
        "Linear",
        [](auto on) {
          return nn::Linear<float, typename decltype(on)::type>({13, 5, true});
        },
        Shape{4, 13});
    compare_layer(
        "SiLU", [](auto on) { return nn::SiLU<float, typename decltype(on)::type>(); }, Shape{2, 3, 4, 5});
    compare_layer(
        "AttentionBlock (2 heads)",
        [](auto on) {
          return nn::AttentionBlock<float, typename decltype(on)::type>({8, 2, 4, 1e-6});
        },
        Shape{2, 8, 5, 3});
    compare_layer(
        "Upsample",
        [](auto on) {
          return nn::Upsample<float, typename decltype(on)::type>({4, 6});
        },
        Shape{2, 4, 3, 5});
  } catch (const std::exception& e) {
    std::printf("FAILED with an exception: %s\n", e.what());
    return 1;
  }
  return cuda_test::report();
}

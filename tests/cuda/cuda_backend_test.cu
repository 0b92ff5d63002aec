// The CUDA back end against the CPU back end, op by op and layer by layer, on the same
// inputs. Where no GPU is present it says so and exits with ctest's skip code.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cuda/cuda.cuh"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/silu.hpp"

using namespace progdiff;
using Cpu = backend::Cpu;
using Gpu = backend::Cuda;

namespace {

int failures = 0;

std::vector<float> random_values(std::size_t n, std::uint64_t stream) {
  Generator gen(2024, stream);
  std::vector<float> v(n);
  for (auto& x : v) x = gen.normal<float>();
  return v;
}

void expect_close(const std::string& what, const std::vector<float>& gpu, const std::vector<float>& cpu, double tol) {
  double worst = 0.0;
  for (std::size_t i = 0; i < cpu.size(); ++i)
    worst = std::fmax(worst, std::fabs(double(gpu[i]) - cpu[i]) / std::fmax(1.0, std::fabs(double(cpu[i]))));
  const bool ok = gpu.size() == cpu.size() && worst <= tol;
  std::printf("%-40s max rel. error %.2e (tolerance %.0e) %s\n", what.c_str(), worst, tol, ok ? "ok" : "FAILED");
  if (!ok) ++failures;
}

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

}  // namespace

int main() {
  if (Gpu::device_count() == 0) {
    std::printf(
        "SKIPPED: no CUDA device is present (cudaGetDeviceCount reports none); the CUDA back end was "
        "compiled and linked but not run.\n");
    return 77;
  }
  try {
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
    // Philox noise is the same numbers on both back ends.
    Tensor<float, Gpu> noise(Shape{4097});
    Gpu::normal<float>(noise.size(), 7, 3, 11, noise.data());
    Tensor<float, Cpu> noise_cpu(Shape{4097});
    Cpu::normal<float>(noise_cpu.size(), 7, 3, 11, noise_cpu.data());
    expect_close("Philox normal noise", noise.to_host(), noise_cpu.to_host(), 1e-6);
  } catch (const std::exception& e) {
    std::printf("FAILED with an exception: %s\n", e.what());
    return 1;
  }
  std::printf(failures ? "%d comparisons FAILED\n" : "all comparisons passed\n", failures);
  return failures ? 1 : 0;
}

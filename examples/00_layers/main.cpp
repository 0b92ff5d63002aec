// examples/00_layers: layers composed by hand into a small residual-style stack, the
// pieces a diffusion U-Net is made of. It runs forward and backward on a random batch,
// prints what each layer costs (output shape, FLOPs, parameters, time), and checks the
// backward pass against central differences of the loss in double precision.
//
//   x [8, 3, 16, 16] -> conv_in -> norm1 -> silu1 -> conv1 -> norm2 -> silu2 -> conv2
//     -> flatten -> head (Linear) -> y [8, 10];  loss = sum(y * r) for a fixed random r
//
// Exits 1 when a finite-difference check fails.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <progdiff/backend/cpu/cpu.hpp>
#include <progdiff/core/random.hpp>
#include <progdiff/core/tensor.hpp>
#include <progdiff/nn/conv2d.hpp>
#include <progdiff/nn/group_norm.hpp>
#include <progdiff/nn/layer.hpp>
#include <progdiff/nn/linear.hpp>
#include <progdiff/nn/silu.hpp>

namespace pd = progdiff;
namespace nn = progdiff::nn;
using Cpu = pd::backend::Cpu;

namespace {

/// [N, C, H, W] -> [N, C*H*W] between the convolutions and the linear head; a view, no copy.
template <class T, class B>
class Flatten {
 public:
  using value_type = T;
  using backend_type = B;

  pd::Shape output_shape(const pd::Shape& in) const { return pd::Shape{in[0], in.numel() / in[0]}; }
  pd::Tensor<T, B> forward(const pd::Tensor<T, B>& x) {
    in_shape_ = x.shape();
    return x.reshape(output_shape(x.shape()));
  }
  pd::Tensor<T, B> backward(const pd::Tensor<T, B>& dy) { return dy.reshape(in_shape_); }
  std::int64_t flops(const pd::Shape&) const { return 0; }
  std::int64_t parameter_count() const { return 0; }
  nn::ChannelAxes channel_axes() const { return {}; }
  template <class F>
  void visit_parameters(F&&, const std::string&) {}

 private:
  pd::Shape in_shape_;
};

template <class L>
struct Named {
  std::string name;
  L layer;
};

constexpr std::int64_t kBatch = 8, kChannels = 32, kSize = 16, kClasses = 10;

/// The stack, for element type T. Every layer satisfies progdiff::nn::Layer.
template <class T>
auto make_stack() {
  using B = Cpu;
  auto stack = std::make_tuple(
      Named<nn::Conv2d<T, B>>{"conv_in", nn::Conv2d<T, B>({.in_channels = 3, .out_channels = kChannels})},
      Named<nn::GroupNorm<T, B>>{"norm1", nn::GroupNorm<T, B>({.groups = 8, .channels = kChannels})},
      Named<nn::SiLU<T, B>>{"silu1", {}},
      Named<nn::Conv2d<T, B>>{"conv1", nn::Conv2d<T, B>({.in_channels = kChannels, .out_channels = kChannels})},
      Named<nn::GroupNorm<T, B>>{"norm2", nn::GroupNorm<T, B>({.groups = 8, .channels = kChannels})},
      Named<nn::SiLU<T, B>>{"silu2", {}},
      Named<nn::Conv2d<T, B>>{"conv2", nn::Conv2d<T, B>({.in_channels = kChannels, .out_channels = kChannels})},
      Named<Flatten<T, B>>{"flatten", {}},
      Named<nn::Linear<T, B>>{"head",
                              nn::Linear<T, B>({.in_features = kChannels * kSize * kSize, .out_features = kClasses})});
  std::apply([](auto&... entry) { (static_cast<void>(nn::check_layer<decltype(entry.layer)>()), ...); }, stack);
  // Same seed for every element type, so the float and double stacks hold the same weights.
  pd::Generator gen(7);
  std::apply(
      [&](auto&... entry) {
        (
            [&](auto& layer) {
              if constexpr (requires { layer.initialize(gen); }) layer.initialize(gen);
            }(entry.layer),
            ...);
      },
      stack);
  return stack;
}

template <class T>
pd::Tensor<T, Cpu> random_tensor(pd::Shape shape, std::uint64_t stream) {
  pd::Generator gen(2024, stream);
  std::vector<T> values(static_cast<std::size_t>(shape.numel()));
  for (auto& v : values) v = gen.normal<T>();
  return pd::Tensor<T, Cpu>::from_host(shape, values);
}

template <class Stack, class T>
pd::Tensor<T, Cpu> forward(Stack& stack, pd::Tensor<T, Cpu> x) {
  std::apply([&](auto&... entry) { ((x = entry.layer.forward(x)), ...); }, stack);
  return x;
}

template <class Stack, class T>
pd::Tensor<T, Cpu> backward(Stack& stack, pd::Tensor<T, Cpu> dy) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    constexpr std::size_t n = sizeof...(I);
    ((dy = std::get<n - 1 - I>(stack).layer.backward(dy)), ...);
  }
  (std::make_index_sequence<std::tuple_size_v<Stack>>{});
  return dy;
}

/// loss = sum(y * r): dloss/dy = r.
template <class T>
double loss_of(const pd::Tensor<T, Cpu>& y, const pd::Tensor<T, Cpu>& r) {
  return Cpu::dot(y.size(), y.data(), r.data());
}

struct Row {
  std::string name;
  pd::Shape out;
  std::int64_t flops = 0, params = 0;
  std::vector<double> forward_ms, backward_ms;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

/// Times every layer's forward and backward in float32, `repeats` times; prints the table.
void profile(int repeats) {
  auto stack = make_stack<float>();
  const auto x = random_tensor<float>({kBatch, 3, kSize, kSize}, 0);
  const auto r = random_tensor<float>({kBatch, kClasses}, 1);

  std::vector<Row> rows;
  pd::Shape shape = x.shape();
  std::apply(
      [&](auto&... entry) {
        ((rows.push_back(Row{entry.name,
                             entry.layer.output_shape(shape),
                             entry.layer.flops(shape),
                             entry.layer.parameter_count(),
                             {},
                             {}}),
          shape = rows.back().out),
         ...);
      },
      stack);

  for (int rep = 0; rep < repeats; ++rep) {
    pd::Tensor<float, Cpu> h = x;
    std::size_t i = 0;
    std::apply(
        [&](auto&... entry) {
          (
              [&](auto& layer) {
                const auto start = Clock::now();
                h = layer.forward(h);
                rows[i++].forward_ms.push_back(ms_since(start));
              }(entry.layer),
              ...);
        },
        stack);
    pd::Tensor<float, Cpu> dy = r;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      constexpr std::size_t n = sizeof...(I);
      (
          [&](auto& layer, std::size_t row) {
            const auto start = Clock::now();
            dy = layer.backward(dy);
            rows[row].backward_ms.push_back(ms_since(start));
          }(std::get<n - 1 - I>(stack).layer, n - 1 - I),
          ...);
    }
    (std::make_index_sequence<std::tuple_size_v<decltype(stack)>>{});
    std::apply([](auto&... entry) { (nn::zero_grad(entry.layer), ...); }, stack);
  }

  std::printf("layer stack on %s, float32, input %s, median of %d runs\n\n", Cpu::name(), x.shape().str().c_str(),
              repeats);
  std::printf("%-9s %-18s %10s %10s %9s %9s %9s\n", "layer", "output shape", "MFLOP", "params", "fwd ms", "bwd ms",
              "GFLOP/s");
  std::int64_t total_flops = 0, total_params = 0;
  double total_fwd = 0, total_bwd = 0;
  for (const Row& row : rows) {
    const double fwd = median(row.forward_ms), bwd = median(row.backward_ms);
    const double gflops = fwd > 0 && row.flops > 0 ? static_cast<double>(row.flops) / (fwd * 1e6) : 0.0;
    std::printf("%-9s %-18s %10.2f %10lld %9.3f %9.3f %9s\n", row.name.c_str(), row.out.str().c_str(),
                static_cast<double>(row.flops) / 1e6, static_cast<long long>(row.params), fwd, bwd,
                gflops > 0 ? std::to_string(static_cast<int>(gflops + 0.5)).c_str() : "-");
    total_flops += row.flops;
    total_params += row.params;
    total_fwd += fwd;
    total_bwd += bwd;
  }
  std::printf("%-9s %-18s %10.2f %10lld %9.3f %9.3f\n\n", "total", "", static_cast<double>(total_flops) / 1e6,
              static_cast<long long>(total_params), total_fwd, total_bwd);
  std::printf(
      "(FLOPs count multiply-adds of convolutions and linear layers as 2, as the papers do;\n"
      " normalization and activations count 0. Backward does about twice the forward FLOPs.)\n\n");
}

struct Probe {
  std::string parameter;  // as visit_parameters names it, e.g. "conv_in.weight"
  std::size_t index;
};

/// Compares backward's gradient of `loss` with respect to a few parameter entries with
/// central differences, everything in double. Returns the number of failed entries.
int gradient_check(double tolerance) {
  using T = double;
  auto stack = make_stack<T>();
  const auto x = random_tensor<T>({kBatch, 3, kSize, kSize}, 0);
  const auto r = random_tensor<T>({kBatch, kClasses}, 1);

  const std::vector<Probe> probes = {
      {"conv_in.weight", 5}, {"norm1.gamma", 3}, {"conv1.bias", 17}, {"norm2.beta", 30}, {"head.weight", 12345}};
  std::printf("gradient check: d(sum(y * r)) / d(parameter), backward vs. central difference (double)\n\n");
  std::printf("%-16s %7s %16s %16s %11s\n", "parameter", "index", "backward", "finite diff.", "rel. error");
  int failures = 0;
  for (const Probe& probe : probes) {
    // Backward accumulates, and the differences below run it too: start each probe clean.
    std::apply([](auto&... entry) { (nn::zero_grad(entry.layer), ...); }, stack);
    forward(stack, x);
    backward(stack, r);
    bool found = false;
    std::apply(
        [&](auto&... entry) {
          (entry.layer.visit_parameters(
               [&](const std::string& name, auto& p) {
                 if (name != probe.parameter) return;
                 found = true;
                 const T analytic = p.grad.to_host().at(probe.index);
                 std::vector<T> values = p.value.to_host();
                 const T original = values.at(probe.index);
                 const T h = 1e-5 * std::max(1.0, std::abs(original));
                 auto loss_at = [&](T v) {
                   values[probe.index] = v;
                   p.value.copy_from(pd::Tensor<T, Cpu>::from_host(p.value.shape(), values));
                   const double l = loss_of(forward(stack, x), r);
                   backward(stack, r);  // drops what forward kept
                   return l;
                 };
                 const double numeric = (loss_at(original + h) - loss_at(original - h)) / (2 * h);
                 loss_at(original);
                 const double err =
                     std::abs(analytic - numeric) / std::max({std::abs(analytic), std::abs(numeric), 1e-12});
                 const bool ok = err <= tolerance;
                 if (!ok) ++failures;
                 std::printf("%-16s %7zu %16.9g %16.9g %11.2e %s\n", name.c_str(), probe.index, analytic, numeric, err,
                             ok ? "ok" : "FAILED");
               },
               entry.name),
           ...);
        },
        stack);
    if (!found) {
      std::printf("%-16s not found\n", probe.parameter.c_str());
      ++failures;
    }
  }
  std::printf("\n");
  return failures;
}

}  // namespace

int main() {
  profile(5);
  const double tolerance = 1e-6;
  const int failures = gradient_check(tolerance);
  if (failures) {
    std::printf("%d gradient entries differ from the central difference by more than %.0e\n", failures, tolerance);
    return 1;
  }
  std::printf("every checked gradient matches its central difference within %.0e\n", tolerance);
  return 0;
}

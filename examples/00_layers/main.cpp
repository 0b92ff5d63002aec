// examples/00_layers: the layers a diffusion U-Net is made of, composed by hand into a
// small residual stack conditioned on the timestep. It runs forward and backward on a
// random batch, prints what each layer costs (output shape, FLOPs, parameters, time), and
// checks backward against central differences of the loss in double precision.
//
//   t [4] -> time (sinusoid + MLP) -> temb [4, 64]
//   x [4, 3, 16, 16] -> conv_in -> res (ResBlock 32 -> 64, + temb) -> down (stride 2)
//     -> attn (2 heads at 8x8) -> up (nearest x2 + conv) -> norm_out -> silu_out -> flatten
//     -> head (Linear) -> y [4, 10]
//   loss = sum(y * r) for a fixed random r
//
// Exits 1 when a finite-difference check fails.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <progdiff/backend/cpu/cpu.hpp>
#include <progdiff/core/random.hpp>
#include <progdiff/core/tensor.hpp>
#include <progdiff/nn/attention_block.hpp>
#include <progdiff/nn/conv2d.hpp>
#include <progdiff/nn/downsample.hpp>
#include <progdiff/nn/group_norm.hpp>
#include <progdiff/nn/layer.hpp>
#include <progdiff/nn/linear.hpp>
#include <progdiff/nn/res_block.hpp>
#include <progdiff/nn/silu.hpp>
#include <progdiff/nn/timestep_embedding.hpp>
#include <progdiff/nn/upsample.hpp>

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
  template <class F>
  void visit_parameters(F&&, const std::string&) {}

 private:
  pd::Shape in_shape_;
};

/// The time embedding shared by every time-conditioned block of one forward pass, and the
/// sum of their gradients with respect to it.
template <class T, class B>
struct TimeContext {
  pd::Tensor<T, B> temb, dtemb;
};

/// A ResBlock seen as a one-input layer: it reads the time embedding from the shared context
/// and adds its embedding gradient there, so it chains like the other layers.
template <class T, class B>
class TimeConditioned {
 public:
  using value_type = T;
  using backend_type = B;

  TimeConditioned(nn::ResBlockConfig config, std::shared_ptr<TimeContext<T, B>> context)
      : block_(config), context_(std::move(context)) {}

  void initialize(pd::Generator& gen) { block_.initialize(gen); }
  pd::Shape output_shape(const pd::Shape& in) const { return block_.output_shape(in); }
  pd::Tensor<T, B> forward(const pd::Tensor<T, B>& x) { return block_.forward(x, context_->temb); }
  pd::Tensor<T, B> backward(const pd::Tensor<T, B>& dy) {
    nn::ResBlockGrads<T, B> grads = block_.backward(dy);
    if (context_->dtemb.empty())
      context_->dtemb = grads.dtemb;
    else
      B::axpy(grads.dtemb.size(), T(1), grads.dtemb.data(), context_->dtemb.data());
    return grads.dx;
  }
  std::int64_t flops(const pd::Shape& in) const { return block_.flops(in); }
  std::int64_t parameter_count() const { return block_.parameter_count(); }
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    block_.visit_parameters(f, prefix);
  }

 private:
  nn::ResBlock<T, B> block_;
  std::shared_ptr<TimeContext<T, B>> context_;
};

template <class L>
struct Named {
  std::string name;
  L layer;
};

constexpr std::int64_t kBatch = 4, kSize = 16, kClasses = 10, kTimeChannels = 64;

/// The model for element type T: a time embedding and a chain of one-input layers.
template <class T>
struct Model {
  using B = Cpu;
  using Context = TimeContext<T, B>;

  std::shared_ptr<Context> context = std::make_shared<Context>();
  Named<nn::TimestepEmbedding<T, B>> time{
      "time", nn::TimestepEmbedding<T, B>({.dim = 32, .hidden = kTimeChannels, .out = kTimeChannels})};
  std::tuple<Named<nn::Conv2d<T, B>>, Named<TimeConditioned<T, B>>, Named<nn::Downsample<T, B>>,
             Named<nn::AttentionBlock<T, B>>, Named<nn::Upsample<T, B>>, Named<nn::GroupNorm<T, B>>,
             Named<nn::SiLU<T, B>>, Named<Flatten<T, B>>, Named<nn::Linear<T, B>>>
      chain{{"conv_in", nn::Conv2d<T, B>({.in_channels = 3, .out_channels = 32})},
            {"res", TimeConditioned<T, B>(
                        {.in_channels = 32, .out_channels = 64, .temb_channels = kTimeChannels, .groups = 8}, context)},
            {"down", nn::Downsample<T, B>({.in_channels = 64, .out_channels = 64})},
            {"attn", nn::AttentionBlock<T, B>({.channels = 64, .heads = 2, .groups = 8})},
            {"up", nn::Upsample<T, B>({.in_channels = 64, .out_channels = 32})},
            {"norm_out", nn::GroupNorm<T, B>({.groups = 8, .channels = 32})},
            {"silu_out", {}},
            {"flatten", {}},
            {"head", nn::Linear<T, B>({.in_features = 32 * kSize * kSize, .out_features = kClasses})}};

  Model() {
    static_assert(nn::LayerBase<nn::TimestepEmbedding<T, B>>);
    std::apply([](auto&... entry) { (static_cast<void>(nn::check_layer<decltype(entry.layer)>()), ...); }, chain);
    // One seed for every element type, so the float and double models hold the same weights.
    pd::Generator gen(7);
    for_each([&](const std::string&, auto& layer) {
      if constexpr (requires { layer.initialize(gen); }) layer.initialize(gen);
    });
  }

  /// f(name, layer) for the time embedding, then every layer of the chain in order.
  template <class F>
  void for_each(F&& f) {
    f(time.name, time.layer);
    std::apply([&](auto&... entry) { (f(entry.name, entry.layer), ...); }, chain);
  }

  /// f(name, layer) for the chain in reverse order, as backward visits it.
  template <class F>
  void for_each_reversed(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      constexpr std::size_t n = sizeof...(I);
      (f(std::get<n - 1 - I>(chain).name, std::get<n - 1 - I>(chain).layer), ...);
    }
    (std::make_index_sequence<std::tuple_size_v<decltype(chain)>>{});
  }

  pd::Tensor<T, B> forward(const pd::Tensor<T, B>& x, const pd::Tensor<T, B>& t) {
    context->temb = time.layer.forward(t);
    pd::Tensor<T, B> h = x;
    std::apply([&](auto&... entry) { ((h = entry.layer.forward(h)), ...); }, chain);
    return h;
  }

  void backward(const pd::Tensor<T, B>& dy) {
    context->dtemb.reset();
    pd::Tensor<T, B> g = dy;
    for_each_reversed([&](const std::string&, auto& layer) { g = layer.backward(g); });
    time.layer.backward(context->dtemb);
  }

  void zero_grad() {
    for_each([](const std::string&, auto& layer) { nn::zero_grad(layer); });
  }
};

template <class T>
pd::Tensor<T, Cpu> random_tensor(pd::Shape shape, std::uint64_t stream) {
  pd::Generator gen(2024, stream);
  std::vector<T> values(static_cast<std::size_t>(shape.numel()));
  for (auto& v : values) v = gen.normal<T>();
  return pd::Tensor<T, Cpu>::from_host(shape, values);
}

/// A batch: images x [N, 3, 16, 16], timesteps t [N] in [0, 1000), and the loss weights r;
/// N at most 4.
template <class T>
struct Batch {
  explicit Batch(std::int64_t n = kBatch)
      : x(random_tensor<T>({n, 3, kSize, kSize}, 0)),
        t(pd::Tensor<T, Cpu>::from_host({4}, std::vector<T>{T(3), T(250), T(517), T(999)}).slice(0, n)),
        r(random_tensor<T>({n, kClasses}, 1)) {}
  pd::Tensor<T, Cpu> x, t, r;
};

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
  Model<float> model;
  const Batch<float> batch;

  std::vector<Row> rows;
  pd::Shape shape = batch.x.shape();
  model.for_each([&](const std::string& name, auto& layer) {
    const pd::Shape in = rows.empty() ? batch.t.shape() : shape;
    rows.push_back(Row{name, layer.output_shape(in), layer.flops(in), layer.parameter_count(), {}, {}});
    if (rows.size() > 1) shape = rows.back().out;
  });

  for (int rep = 0; rep < repeats; ++rep) {
    std::size_t i = 0;
    auto start = Clock::now();
    model.context->temb = model.time.layer.forward(batch.t);
    rows[i++].forward_ms.push_back(ms_since(start));
    pd::Tensor<float, Cpu> h = batch.x;
    std::apply(
        [&](auto&... entry) {
          (
              [&](auto& layer) {
                const auto begin = Clock::now();
                h = layer.forward(h);
                rows[i++].forward_ms.push_back(ms_since(begin));
              }(entry.layer),
              ...);
        },
        model.chain);

    model.context->dtemb.reset();
    pd::Tensor<float, Cpu> g = batch.r;
    i = rows.size();
    model.for_each_reversed([&](const std::string&, auto& layer) {
      const auto begin = Clock::now();
      g = layer.backward(g);
      rows[--i].backward_ms.push_back(ms_since(begin));
    });
    start = Clock::now();
    model.time.layer.backward(model.context->dtemb);
    rows[0].backward_ms.push_back(ms_since(start));
    model.zero_grad();
  }

  std::printf("layers on the %s back end, float32, x %s, t %s, median of %d runs\n\n", Cpu::name(),
              batch.x.shape().str().c_str(), batch.t.shape().str().c_str(), repeats);
  std::printf("%-9s %-17s %9s %9s %9s %9s %8s\n", "layer", "output shape", "MFLOP", "params", "fwd ms", "bwd ms",
              "GFLOP/s");
  std::int64_t total_flops = 0, total_params = 0;
  double total_fwd = 0, total_bwd = 0;
  for (const Row& row : rows) {
    const double fwd = median(row.forward_ms), bwd = median(row.backward_ms);
    char rate[32] = "-";
    if (fwd > 0 && row.flops > 0)
      std::snprintf(rate, sizeof rate, "%.1f", static_cast<double>(row.flops) / (fwd * 1e6));
    std::printf("%-9s %-17s %9.2f %9lld %9.3f %9.3f %8s\n", row.name.c_str(), row.out.str().c_str(),
                static_cast<double>(row.flops) / 1e6, static_cast<long long>(row.params), fwd, bwd, rate);
    total_flops += row.flops;
    total_params += row.params;
    total_fwd += fwd;
    total_bwd += bwd;
  }
  std::printf("%-9s %-17s %9.2f %9lld %9.3f %9.3f\n\n", "total", "", static_cast<double>(total_flops) / 1e6,
              static_cast<long long>(total_params), total_fwd, total_bwd);
  std::printf(
      "FLOPs: forward, a multiply-add counts 2, convolutions, linear layers and attention\n"
      "products only (normalization and activations count 0), as the papers count them.\n"
      "Backward does about twice the forward FLOPs. GFLOP/s: forward.\n\n");
}

struct Probe {
  std::string parameter;  // as visit_parameters names it, e.g. "conv_in.weight"
  std::size_t index;
};

/// Compares backward's gradient of the loss with respect to a few parameter entries, one in
/// each kind of layer, with central differences, everything in double. Returns the number
/// of failed entries.
int gradient_check(double tolerance) {
  using T = double;
  Model<T> model;
#ifdef NDEBUG
  const Batch<T> batch;
#else
  const Batch<T> batch(1);  // see the probes below
#endif

  // One entry in each kind of layer; the time MLP's entry checks the embedding gradient path.
  std::vector<Probe> probes = {{"time.linear_1.weight", 77}, {"conv_in.weight", 5}, {"res.norm1.gamma", 3},
                               {"res.conv2.weight", 1000},   {"res.skip.bias", 17}, {"down.conv.weight", 321},
                               {"attn.qkv.weight", 4000},    {"attn.proj.bias", 9}, {"up.conv.weight", 2000},
                               {"norm_out.beta", 30},        {"head.weight", 12345}};
  std::printf("gradient check: d sum(y * r) / d parameter, backward vs. central difference (double)\n\n");
  std::printf("%-22s %6s %16s %16s %10s\n", "parameter", "index", "backward", "finite diff.", "rel. error");
  int failures = 0;
#ifndef NDEBUG
  // Unoptimized or sanitizer builds run at a fraction of the speed: one sample, and probes
  // in the embedding path, the residual block, attention and the head.
  probes = {probes[0], probes[3], probes[6], probes[10]};
#endif
  for (const Probe& probe : probes) {
    // Backward accumulates, and the differences below run it too: start each probe clean.
    model.zero_grad();
    model.forward(batch.x, batch.t);
    model.backward(batch.r);
    bool found = false;
    model.for_each([&](const std::string& layer_name, auto& layer) {
      layer.visit_parameters(
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
              const double loss = loss_of(model.forward(batch.x, batch.t), batch.r);
              model.backward(batch.r);  // drops what forward kept
              return loss;
            };
            const double numeric = (loss_at(original + h) - loss_at(original - h)) / (2 * h);
            loss_at(original);
            const double err = std::abs(analytic - numeric) / std::max({std::abs(analytic), std::abs(numeric), 1e-12});
            // A tiny gradient is limited by the differences' rounding (about 1e-10 absolute for
            // this O(1) loss), not by relative accuracy.
            const bool ok = err <= tolerance || std::abs(analytic - numeric) <= 1e-8;
            if (!ok) ++failures;
            std::printf("%-22s %6zu %16.9g %16.9g %10.2e %s\n", name.c_str(), probe.index, analytic, numeric, err,
                        ok ? "ok" : "FAILED");
          },
          layer_name);
    });
    if (!found) {
      std::printf("%-22s not found\n", probe.parameter.c_str());
      ++failures;
    }
  }
  std::printf("\n");
  return failures;
}

}  // namespace

int main() {
#ifdef NDEBUG
  profile(5);
#else
  profile(1);               // unoptimized or sanitizer builds: one run is enough to see the table
#endif
  // A wrong backward is off by far more than 1e-5 (or 1e-8 absolute for tiny gradients).
  const double tolerance = 1e-5;
  const int failures = gradient_check(tolerance);
  if (failures) {
    std::printf("%d gradient entries differ from the central difference by more than %.0e\n", failures, tolerance);
    return 1;
  }
  std::printf(
      "every checked gradient matches its central difference (relative error at most %.0e,\n"
      "or absolute at most 1e-8 for tiny gradients)\n",
      tolerance);
  return 0;
}

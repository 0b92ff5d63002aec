// Layer checks that need no PyTorch: central-difference gradients in double precision (the
// loss is a random projection <w, y> of the output), dropout and the sinusoidal embedding
// against their closed forms, FLOPs and parameter counts against hand counts, and the
// errors bad shapes and configurations raise.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "layer_support.hpp"
#include "progdiff/backend/math/philox.hpp"
#include "progdiff/nn/attention_block.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/downsample.hpp"
#include "progdiff/nn/dropout.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/res_block.hpp"
#include "progdiff/nn/silu.hpp"
#include "progdiff/nn/timestep_embedding.hpp"
#include "progdiff/nn/upsample.hpp"

namespace progdiff_tests_layer_gradcheck {

namespace {

using namespace layer_test;
namespace nn = progdiff::nn;
using progdiff::ConfigError;
using progdiff::Generator;
using progdiff::Shape;
using progdiff::ShapeError;

/// Central differences of input and parameter gradients of a one-input layer.
/// `before_forward` runs before every forward (a dropout layer rewinds its stream there).
template <class L>
void gradcheck_unary(L& layer, Shape in, std::uint64_t seed, const std::function<void()>& before_forward = {}) {
  Generator gen(seed);
  randomize_parameters(layer, gen);
  auto x = random_tensor<double>(in, gen);
  const auto w = random_tensor<double>(layer.output_shape(in), gen);
  const std::function<double()> loss = [&] {
    if (before_forward) before_forward();
    return project(w, layer.forward(x));
  };
  loss();
  const auto dx = layer.backward(w);
  const auto grads = parameter_gradients(layer);
  check_gradient(x, dx, loss, "input gradient");
  check_parameter_gradients(layer, grads, loss);
}

}  // namespace

static_assert(nn::LayerBase<nn::ResBlock<float, Cpu>> && nn::LayerBase<nn::TimestepEmbedding<double, Cpu>>,
              "the two-input and timestep layers still report costs, parameters and channel axes");
static_assert(nn::Layer<nn::AttentionBlock<double, Cpu>> && nn::Layer<nn::Dropout<float, Cpu>> &&
              nn::Layer<nn::Downsample<float, Cpu>> && nn::Layer<nn::Upsample<double, Cpu>>);

TEST_CASE("Conv2d gradients match central differences") {
  for (auto [k, stride, pad] : {std::tuple{3, 1, 1}, std::tuple{1, 1, 0}, std::tuple{3, 2, 1}}) {
    nn::Conv2d<double, Cpu> layer(nn::Conv2dConfig{3, 4, k, stride, pad, true});
    gradcheck_unary(layer, Shape{2, 3, 5, 4}, 1);
  }
}

TEST_CASE("Linear gradients match central differences") {
  nn::Linear<double, Cpu> layer(nn::LinearConfig{5, 3, true});
  gradcheck_unary(layer, Shape{4, 5}, 2);
}

TEST_CASE("GroupNorm gradients match central differences") {
  nn::GroupNorm<double, Cpu> layer(nn::GroupNormConfig{3, 6, 1e-5});
  gradcheck_unary(layer, Shape{2, 6, 3, 5}, 3);
}

TEST_CASE("SiLU gradients match central differences") {
  nn::SiLU<double, Cpu> layer;
  gradcheck_unary(layer, Shape{2, 3, 4, 5}, 4);
}

TEST_CASE("Dropout gradients match central differences for a fixed mask") {
  nn::Dropout<double, Cpu> layer(nn::DropoutConfig{0.4, 17});
  gradcheck_unary(layer, Shape{2, 3, 4, 5}, 5, [&] { layer.set_calls(0); });
}

TEST_CASE("TimestepEmbedding parameter gradients match central differences") {
  nn::TimestepEmbedding<double, Cpu> layer(nn::TimestepEmbeddingConfig{8, 6, 5});
  Generator gen(6);
  randomize_parameters(layer, gen);
  const auto t = HostTensor<double>::from_host(Shape{3}, std::vector<double>{0.0, 12.5, 731.0});
  const auto w = random_tensor<double>(Shape{3, 5}, gen);
  const std::function<double()> loss = [&] { return project(w, layer.forward(t)); };
  loss();
  layer.backward(w);
  check_parameter_gradients(layer, parameter_gradients(layer), loss);
}

TEST_CASE("AttentionBlock gradients match central differences") {
  nn::AttentionBlock<double, Cpu> one_head(nn::AttentionBlockConfig{4, 1, 2, 1e-6});
  gradcheck_unary(one_head, Shape{2, 4, 3, 2}, 7);
  nn::AttentionBlock<double, Cpu> two_heads(nn::AttentionBlockConfig{6, 2, 3, 1e-6});
  gradcheck_unary(two_heads, Shape{1, 6, 2, 3}, 8);
}

TEST_CASE("Downsample and Upsample gradients match central differences") {
  nn::Downsample<double, Cpu> down(nn::DownsampleConfig{3, 4});
  gradcheck_unary(down, Shape{2, 3, 5, 4}, 9);
  nn::Upsample<double, Cpu> up(nn::UpsampleConfig{3, 2});
  gradcheck_unary(up, Shape{2, 3, 2, 3}, 10);
}

TEST_CASE("ResBlock gradients match central differences") {
  // With a skip convolution and an active dropout (its stream rewound before each forward),
  // and with the identity skip.
  for (auto [in, out, dropout] : {std::tuple{2, 4, 0.3}, std::tuple{4, 4, 0.0}}) {
    CAPTURE(in);
    CAPTURE(out);
    nn::ResBlock<double, Cpu> layer(nn::ResBlockConfig{in, out, 3, 2, 1e-6, dropout, 5});
    Generator gen(11);
    randomize_parameters(layer, gen);
    auto x = random_tensor<double>(Shape{2, in, 3, 4}, gen);
    auto temb = random_tensor<double>(Shape{2, 3}, gen);
    const auto w = random_tensor<double>(Shape{2, out, 3, 4}, gen);
    const std::function<double()> loss = [&] {
      layer.dropout().set_calls(0);
      return project(w, layer.forward(x, temb));
    };
    loss();
    const auto grads = layer.backward(w);
    const auto param_grads = parameter_gradients(layer);
    check_gradient(x, grads.dx, loss, "dx");
    check_gradient(temb, grads.dtemb, loss, "dtemb");
    check_parameter_gradients(layer, param_grads, loss);
  }
}

TEST_CASE("Dropout masks follow Philox: kept iff philox_uniform(seed, call, i) > p") {
  const double p = 0.25;
  const std::uint64_t seed = 42;
  Generator gen(12);
  const auto x = random_tensor<float>(Shape{3, 4, 5, 6}, gen);
  const auto dy = random_tensor<float>(Shape{3, 4, 5, 6}, gen);
  const auto xs = x.to_host(), dys = dy.to_host();
  nn::Dropout<float, Cpu> layer(nn::DropoutConfig{p, seed});

  auto expect_mask = [&](const std::vector<float>& got, const std::vector<float>& in, std::uint64_t call) {
    std::size_t dropped = 0, wrong = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      const bool keep = progdiff::math::philox_uniform(seed, call, i) > p;
      const double want = keep ? static_cast<double>(in[i]) / (1.0 - p) : 0.0;
      if (std::abs(got[i] - want) > 1e-6 * std::max(1.0, std::abs(want))) ++wrong;
      dropped += keep ? 0 : 1;
    }
    CHECK(wrong == 0);
    return dropped;
  };

  const auto y0 = layer.forward(x).to_host();
  const std::size_t dropped = expect_mask(y0, xs, 0);
  // 360 Bernoulli(0.25) draws: mean 90, standard deviation 8.2.
  CHECK(dropped > 50);
  CHECK(dropped < 130);
  expect_mask(layer.backward(dy).to_host(), dys, 0);

  const auto y1 = layer.forward(x).to_host();
  expect_mask(y1, xs, 1);
  CHECK(y1 != y0);
  CHECK(layer.calls() == 2);

  // A layer restored at call 1 reproduces the second mask.
  nn::Dropout<float, Cpu> resumed(nn::DropoutConfig{p, seed});
  resumed.set_calls(1);
  CHECK(resumed.forward(x).to_host() == y1);

  // Evaluation mode is the identity and does not advance the stream.
  layer.set_training(false);
  CHECK(layer.forward(x).to_host() == xs);
  CHECK(layer.backward(dy).to_host() == dys);
  CHECK(layer.calls() == 2);
}

TEST_CASE("Dropout keys each sample's mask by its global index, not its place in the batch split") {
  const double p = 0.3;
  Generator gen(5);
  const auto x = random_tensor<float>(Shape{4, 3, 2, 5}, gen);
  const auto dy = random_tensor<float>(Shape{4, 3, 2, 5}, gen);
  const std::ptrdiff_t per = 30;  // elements per sample
  auto rows_of = [&](const std::vector<float>& v, std::initializer_list<std::ptrdiff_t> rows) {
    std::vector<float> out;
    for (auto r : rows) out.insert(out.end(), v.begin() + r * per, v.begin() + (r + 1) * per);
    return out;
  };
  const auto xs = x.to_host(), dys = dy.to_host();
  nn::Dropout<float, Cpu> whole(nn::DropoutConfig{p, 9});
  whole.set_calls(3);
  const auto y = whole.forward(x).to_host();
  const auto dx = whole.backward(dy).to_host();
  CHECK(std::count(y.begin(), y.end(), 0.0f) > 10);  // 120 Bernoulli(0.3) draws: about 36

  // the batch of 4 in two halves, as on two ranks: rows 0-1 with offset 0, rows 2-3 with offset 2
  for (const std::int64_t first : {0, 2}) {
    CAPTURE(first);
    nn::Dropout<float, Cpu> half(nn::DropoutConfig{p, 9});
    half.set_calls(3);
    half.set_sample_offset(static_cast<std::uint64_t>(first));
    const auto yh = half.forward(x.slice(first, first + 2)).to_host();
    half.set_sample_offset(0);  // set after the forward: backward keeps the forward's mask
    CHECK(yh == rows_of(y, {first, first + 1}));
    CHECK(half.backward(dy.slice(first, first + 2)).to_host() == rows_of(dx, {first, first + 1}));
    CHECK(half.calls() == 4);
  }
  // without the offset, rows 2-3 would take rows 0-1's mask
  nn::Dropout<float, Cpu> unkeyed(nn::DropoutConfig{p, 9});
  unkeyed.set_calls(3);
  CHECK(unkeyed.forward(x.slice(2, 4)).to_host() != rows_of(y, {2, 3}));

  // rows 3, 0 and 1 of the batch gathered into a sub-batch (a group's samples): keyed by their
  // global indices, first + rows[j], in one run of consecutive rows and one single row
  const std::vector<std::int64_t> rows{3, 0, 1};
  std::vector<float> gathered_x, gathered_dy;
  for (auto r : rows) {
    gathered_x.insert(gathered_x.end(), xs.begin() + r * per, xs.begin() + (r + 1) * per);
    gathered_dy.insert(gathered_dy.end(), dys.begin() + r * per, dys.begin() + (r + 1) * per);
  }
  nn::Dropout<float, Cpu> gathered(nn::DropoutConfig{p, 9});
  gathered.set_calls(3);
  gathered.set_sample_rows(0, rows);
  CHECK(gathered.forward(HostTensor<float>::from_host(Shape{3, 3, 2, 5}, gathered_x)).to_host() ==
        rows_of(y, {3, 0, 1}));
  CHECK(gathered.backward(HostTensor<float>::from_host(Shape{3, 3, 2, 5}, gathered_dy)).to_host() ==
        rows_of(dx, {3, 0, 1}));
  // row 1 of the half that starts at sample 2 is sample 3
  gathered.set_calls(3);
  gathered.set_sample_rows(2, std::vector<std::int64_t>{1});
  CHECK(gathered.forward(x.slice(3, 4)).to_host() == rows_of(y, {3}));
  // the rows must name every sample of the batch
  CHECK_THROWS_AS(gathered.forward(x.slice(0, 2)), ShapeError);
}

TEST_CASE("The sinusoidal embedding follows DDPM's formula") {
  // dim 10, half 5: freq_i = exp(-ln(10000) i / 4), [sin | cos]; dim 7 with shift 0 and
  // max_period 100: half 3, freq_i = exp(-ln(100) i / 3), last column zero.
  for (auto [dim, max_period, shift] : {std::tuple{10, 10000.0, 1.0}, std::tuple{7, 100.0, 0.0}}) {
    nn::TimestepEmbedding<double, Cpu> layer(nn::TimestepEmbeddingConfig{dim, 4, 4, max_period, shift});
    const std::vector<double> ts{0.0, 0.5, 3.0, 999.0};
    const auto e = layer.sinusoidal(HostTensor<double>::from_host(Shape{4}, ts)).to_host();
    const int half = dim / 2;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < half; ++i) {
        const double freq = std::pow(max_period, -static_cast<double>(i) / (half - shift));
        CHECK(e[n * dim + i] == doctest::Approx(std::sin(ts[n] * freq)).epsilon(1e-12));
        CHECK(e[n * dim + half + i] == doctest::Approx(std::cos(ts[n] * freq)).epsilon(1e-12));
      }
    if (dim % 2)
      for (int n = 0; n < 4; ++n) CHECK(e[n * dim + dim - 1] == 0.0);
  }
}

TEST_CASE("Layer FLOPs and parameter counts match hand counts") {
  // N = 2, 8x6 images: HW = 48.
  const std::int64_t n = 2, hw = 48;
  nn::AttentionBlock<float, Cpu> attn(nn::AttentionBlockConfig{8, 2, 4, 1e-6});
  const Shape x{n, 8, 8, 6};
  CHECK(attn.flops(x) == 2 * n * hw * 8 * 24 + 2 * n * hw * 8 * 8 + 4 * n * hw * hw * 8);
  CHECK(attn.parameter_count() == 2 * 8 + (24 * 8 + 24) + (8 * 8 + 8));
  CHECK(count_parameters(attn) == attn.parameter_count());

  nn::ResBlock<float, Cpu> res(nn::ResBlockConfig{4, 8, 16, 2, 1e-6, 0.1, 0});
  const Shape r{n, 4, 8, 6};
  CHECK(res.flops(r) == 2 * n * hw * 8 * 36 + 2 * n * hw * 8 * 72 + 2 * n * 16 * 8 + 2 * n * hw * 8 * 4);
  CHECK(res.parameter_count() == 8 + (8 * 36 + 8) + (8 * 16 + 8) + 16 + (8 * 72 + 8) + (8 * 4 + 8));
  CHECK(count_parameters(res) == res.parameter_count());

  nn::TimestepEmbedding<float, Cpu> temb(nn::TimestepEmbeddingConfig{8, 32, 16});
  CHECK(temb.flops(Shape{n}) == 2 * n * (8 * 32 + 32 * 16));
  CHECK(count_parameters(temb) == temb.parameter_count());

  nn::Downsample<float, Cpu> down(nn::DownsampleConfig{4, 4});
  CHECK(down.output_shape(Shape{n, 4, 7, 6}) == Shape{n, 4, 4, 3});
  CHECK(down.flops(Shape{n, 4, 7, 6}) == 2 * n * 12 * 4 * 36);
  nn::Upsample<float, Cpu> up(nn::UpsampleConfig{4, 3});
  CHECK(up.output_shape(Shape{n, 4, 3, 5}) == Shape{n, 3, 6, 10});
  CHECK(up.flops(Shape{n, 4, 3, 5}) == 2 * n * 60 * 3 * 36);
}

TEST_CASE("Initialization follows PyTorch's defaults") {
  Generator gen(13);
  nn::ResBlock<float, Cpu> res(nn::ResBlockConfig{4, 8, 16, 2, 1e-6, 0.1, 0});
  res.initialize(gen);
  // Conv and Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); GroupNorm: gamma 1, beta 0.
  auto within = [](const HostTensor<float>& t, double bound) {
    double largest = 0.0;
    for (float v : t.to_host()) largest = std::max(largest, static_cast<double>(std::abs(v)));
    CHECK(largest <= bound);
    CHECK(largest > 0.5 * bound);
  };
  within(res.conv1().weight().value, 1.0 / std::sqrt(36.0));
  within(res.conv2().weight().value, 1.0 / std::sqrt(72.0));
  within(res.temb_proj().weight().value, 1.0 / std::sqrt(16.0));
  within(res.skip().weight().value, 1.0 / std::sqrt(4.0));
  for (float v : res.norm2().gamma().value.to_host()) CHECK(v == 1.0f);
  for (float v : res.norm2().beta().value.to_host()) CHECK(v == 0.0f);
}

TEST_CASE("Layers reject wrong input shapes with a ShapeError naming both shapes") {
  using F = float;
  const auto x = HostTensor<F>::zeros(Shape{2, 5, 4, 4});
  const std::vector<std::string> got{"[2, 5, 4, 4]"};
  auto with = [&](std::string expected) { return std::vector<std::string>{got[0], expected}; };

  nn::Conv2d<F, Cpu> conv(nn::Conv2dConfig{3, 4, 3, 1, 1, true});
  check_throws_naming<ShapeError>([&] { conv.forward(x); }, with("[N, 3, H, W]"));
  nn::Linear<F, Cpu> linear(nn::LinearConfig{4, 2, true});
  check_throws_naming<ShapeError>([&] { linear.forward(HostTensor<F>::zeros(Shape{2, 5})); }, {"[2, 5]", "[N, 4]"});
  nn::GroupNorm<F, Cpu> norm(nn::GroupNormConfig{2, 6, 1e-5});
  check_throws_naming<ShapeError>([&] { norm.forward(x); }, with("[N, 6, ...]"));
  nn::SiLU<F, Cpu> silu;
  silu.forward(x);
  check_throws_naming<ShapeError>(
      [&] {
        silu.backward(HostTensor<F>::zeros(Shape{2, 5, 4, 3}));
      },
      {"[2, 5, 4, 3]", "[2, 5, 4, 4]"});
  nn::Dropout<F, Cpu> dropout(nn::DropoutConfig{0.5, 1});
  dropout.forward(x);
  check_throws_naming<ShapeError>(
      [&] {
        dropout.backward(HostTensor<F>::zeros(Shape{2, 5}));
      },
      {"[2, 5]", "[2, 5, 4, 4]"});
  nn::TimestepEmbedding<F, Cpu> temb(nn::TimestepEmbeddingConfig{8, 4, 4});
  check_throws_naming<ShapeError>([&] { temb.forward(HostTensor<F>::zeros(Shape{2, 3})); }, {"[2, 3]", "[N]"});
  nn::AttentionBlock<F, Cpu> attn(nn::AttentionBlockConfig{4, 2, 2, 1e-6});
  check_throws_naming<ShapeError>([&] { attn.forward(x); }, with("[N, 4, H, W]"));
  nn::Downsample<F, Cpu> down(nn::DownsampleConfig{4, 4});
  check_throws_naming<ShapeError>([&] { down.forward(x); }, with("[N, 4, H, W]"));
  nn::Upsample<F, Cpu> up(nn::UpsampleConfig{4, 4});
  check_throws_naming<ShapeError>([&] { up.forward(x); }, with("[N, 4, H, W]"));
  nn::ResBlock<F, Cpu> res(nn::ResBlockConfig{4, 6, 3, 2, 1e-6, 0.0, 0});
  check_throws_naming<ShapeError>([&] { res.forward(x, HostTensor<F>::zeros(Shape{2, 3})); }, with("[N, 4, H, W]"));
  check_throws_naming<ShapeError>(
      [&] {
        res.forward(HostTensor<F>::zeros(Shape{2, 4, 4, 4}), HostTensor<F>::zeros(Shape{2, 5}));
      },
      {"[2, 5]", "[2, 3]"});
}

TEST_CASE("Layers reject bad configurations with a ConfigError") {
  using F = float;
  CHECK_THROWS_AS((nn::Conv2d<F, Cpu>(nn::Conv2dConfig{0, 4, 3, 1, 1, true})), ConfigError);
  CHECK_THROWS_AS((nn::Linear<F, Cpu>(nn::LinearConfig{4, 0, true})), ConfigError);
  check_throws_naming<ConfigError>([] { nn::GroupNorm<F, Cpu>(nn::GroupNormConfig{4, 6, 1e-5}); }, {"4", "6"});
  CHECK_THROWS_AS((nn::Dropout<F, Cpu>(nn::DropoutConfig{1.0, 0})), ConfigError);
  CHECK_THROWS_AS((nn::Dropout<F, Cpu>(nn::DropoutConfig{-0.1, 0})), ConfigError);
  // half = 1 equals the DDPM shift: the frequency formula would divide by zero.
  CHECK_THROWS_AS((nn::TimestepEmbedding<F, Cpu>(nn::TimestepEmbeddingConfig{2, 4, 4, 10000.0, 1.0})), ConfigError);
  check_throws_naming<ConfigError>(
      [] {
        nn::AttentionBlock<F, Cpu>(nn::AttentionBlockConfig{6, 4, 2, 1e-6});
      },
      {"head", "4", "6"});
  CHECK_THROWS_AS((nn::AttentionBlock<F, Cpu>(nn::AttentionBlockConfig{6, 2, 4, 1e-6})), ConfigError);
  CHECK_THROWS_AS((nn::Downsample<F, Cpu>(nn::DownsampleConfig{0, 4})), ConfigError);
  CHECK_THROWS_AS((nn::Upsample<F, Cpu>(nn::UpsampleConfig{4, 0})), ConfigError);
  check_throws_naming<ConfigError>(
      [] {
        nn::ResBlock<F, Cpu>(nn::ResBlockConfig{4, 6, 3, 4, 1e-6, 0.0, 0});
      },
      {"group", "4", "6"});
  CHECK_THROWS_AS((nn::ResBlock<F, Cpu>(nn::ResBlockConfig{4, 4, 3, 2, 1e-6, 1.5, 0})), ConfigError);
}

TEST_CASE("Backward without a preceding forward is refused, also after the cache was used") {
  using F = float;
  const auto x = HostTensor<F>::zeros(Shape{1, 4, 2, 2});
  nn::AttentionBlock<F, Cpu> attn(nn::AttentionBlockConfig{4, 2, 2, 1e-6});
  CHECK_THROWS_AS(attn.backward(x), progdiff::Error);
  attn.forward(x);
  attn.backward(x);
  CHECK_THROWS_AS(attn.backward(x), progdiff::Error);
  nn::Upsample<F, Cpu> up(nn::UpsampleConfig{4, 4});
  CHECK_THROWS_AS(up.backward(HostTensor<F>::zeros(Shape{1, 4, 4, 4})), progdiff::Error);
  nn::ResBlock<F, Cpu> res(nn::ResBlockConfig{4, 4, 3, 2, 1e-6, 0.0, 0});
  CHECK_THROWS_AS(res.backward(x), progdiff::Error);
  res.forward(x, HostTensor<F>::zeros(Shape{1, 3}));
  res.backward(x);
  CHECK_THROWS_AS(res.backward(x), progdiff::Error);
}

}  // namespace progdiff_tests_layer_gradcheck

// The DDPM++ / IDDPM blocks as U-Net options: resampling ResBlocks, skip rescaling and
// scale-shift conditioning against PyTorch (tools/fixtures/make_ddpmpp_fixtures.py) and central
// differences, a U-Net with all of them against PyTorch, DDPM++'s initialization against its
// definition, and the papers' CIFAR-10 presets against the papers' parameter and FLOP counts.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "layer_support.hpp"
#include "progdiff/nn/attention_block.hpp"
#include "progdiff/nn/res_block.hpp"
#include "progdiff/prune/group_parameters.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/presets.hpp"
#include "progdiff/unet/separate_experts.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_ddpmpp {

namespace {

using namespace layer_test;
namespace nn = progdiff::nn;
namespace unet = progdiff::unet;
using progdiff::Generator;
using progdiff::Shape;

template <class T>
constexpr double kTolerance = std::is_same_v<T, float> ? 1e-4 : 1e-12;

progdiff::io::SafetensorsFile read_fixture(const std::string& name) {
  return progdiff::io::read_safetensors(std::string(PROGDIFF_FIXTURES_DIR) + "/ddpmpp/" + name + ".safetensors");
}

nn::Resample resample_of(const std::string& name) {
  return name == "down" ? nn::Resample::Down : name == "up" ? nn::Resample::Up : nn::Resample::None;
}

template <class T>
nn::ResBlock<T, Cpu> res_block_of(const progdiff::io::SafetensorsFile& f) {
  return nn::ResBlock<T, Cpu>(nn::ResBlockConfig{meta_int(f, "in_channels"), meta_int(f, "out_channels"),
                                                 meta_int(f, "temb_channels"), meta_int(f, "groups"),
                                                 meta_double(f, "eps"), 0.0, 0, resample_of(f.metadata.at("resample")),
                                                 meta_int(f, "skip_rescale") != 0, meta_int(f, "scale_shift") != 0});
}

const char* const kResBlockCases[] = {"res_block_down_rescale", "res_block_down_same_width",
                                      "res_block_up_rescale_scale_shift", "res_block_scale_shift_identity"};

// The tiny U-Net of the fixture (make_ddpmpp_fixtures.py, unet_case).
template <class T>
using TinyDdpmpp =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>, unet::BaseChannels<8>,
               unet::GroupNormGroups<4>, unet::AttentionHeads<2>, unet::LearnedVariance, unet::ResBlockResampling,
               unet::SkipRescale, unet::ScaleShiftTime, unet::DdpmppAttention, unet::ElementType<T>>;

}  // namespace

TEST_CASE_TEMPLATE("DDPM++ / IDDPM ResBlocks match PyTorch", T, float, double) {
  for (const char* c : kResBlockCases) {
    SUBCASE(c) {
      const auto f = read_fixture(c);
      auto layer = res_block_of<T>(f);
      load_parameters<T>(layer, f);
      CHECK(layer.parameter_count() == progdiff::nn::count_parameters(layer));
      const auto x = fixture_tensor<T>(f, "x");
      const auto y = layer.forward(x, fixture_tensor<T>(f, "temb"));
      CHECK(layer.output_shape(x.shape()) == y.shape());
      check_close<T>(y, fixture_tensor<T>(f, "y"), kTolerance<T>, f.source + " output");
      const auto grads = layer.backward(fixture_tensor<T>(f, "dy"));
      check_close<T>(grads.dx, fixture_tensor<T>(f, "dx"), kTolerance<T>, f.source + " dx");
      check_close<T>(grads.dtemb, fixture_tensor<T>(f, "dtemb"), kTolerance<T>, f.source + " dtemb");
      check_parameter_grads<T>(layer, f, kTolerance<T>);
    }
  }
  SUBCASE("attention with skip rescaling") {
    const auto f = read_fixture("attention_block_rescale_c8_h2");
    nn::AttentionBlock<T, Cpu> layer(nn::AttentionBlockConfig{8, 2, 2, 1e-6, true});
    load_parameters<T>(layer, f);
    const auto x = fixture_tensor<T>(f, "x");
    check_close<T>(layer.forward(x), fixture_tensor<T>(f, "y"), kTolerance<T>, "attention output");
    check_close<T>(layer.backward(fixture_tensor<T>(f, "dy")), fixture_tensor<T>(f, "dx"), kTolerance<T>,
                   "attention dx");
    check_parameter_grads<T>(layer, f, kTolerance<T>);
  }
}

TEST_CASE("DDPM++ / IDDPM ResBlock gradients match central differences") {
  using R = nn::Resample;
  // resample, skip rescaling, scale-shift, widths; dropout active (its stream rewound per forward).
  for (auto [resample, rescale, scale_shift, in, out] :
       {std::tuple{R::Down, true, false, 2, 4}, std::tuple{R::Down, false, true, 4, 4},
        std::tuple{R::Up, true, true, 4, 2}, std::tuple{R::None, true, true, 4, 4}}) {
    CAPTURE(static_cast<int>(resample));
    CAPTURE(scale_shift);
    nn::ResBlock<double, Cpu> layer(nn::ResBlockConfig{in, out, 3, 2, 1e-6, 0.2, 5, resample, rescale, scale_shift});
    Generator gen(17);
    randomize_parameters(layer, gen);
    auto x = random_tensor<double>(Shape{2, in, 4, 6}, gen);
    auto temb = random_tensor<double>(Shape{2, 3}, gen);
    const auto w = random_tensor<double>(layer.output_shape(x.shape()), gen);
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
  SUBCASE("attention with skip rescaling") {
    nn::AttentionBlock<double, Cpu> layer(nn::AttentionBlockConfig{4, 2, 2, 1e-6, true});
    Generator gen(19);
    randomize_parameters(layer, gen);
    auto x = random_tensor<double>(Shape{2, 4, 3, 2}, gen);
    const auto w = random_tensor<double>(x.shape(), gen);
    const std::function<double()> loss = [&] { return project(w, layer.forward(x)); };
    loss();
    const auto dx = layer.backward(w);
    const auto param_grads = parameter_gradients(layer);
    check_gradient(x, dx, loss, "dx");
    check_parameter_gradients(layer, param_grads, loss);
  }
}

TEST_CASE("a resampling ResBlock needs even sides") {
  nn::ResBlock<float, Cpu> down(nn::ResBlockConfig{4, 4, 3, 2, 1e-6, 0.0, 0, nn::Resample::Down});
  CHECK(down.has_skip());
  CHECK(down.output_shape(Shape{1, 4, 6, 4}) == Shape{1, 4, 3, 2});
  CHECK_THROWS_AS(down.output_shape(Shape{1, 4, 5, 4}), progdiff::ShapeError);
}

TEST_CASE_TEMPLATE("a U-Net of DDPM++ / IDDPM options matches PyTorch", T, float, double) {
  const auto f = read_fixture("unet_ddpmpp_tiny");
  TinyDdpmpp<T> net;
  CHECK(net.config().heads == 2);
  net.set_training(false);
  load_parameters<T>(net, f);
  CHECK(net.parameter_count() == meta_int(f, "parameters"));
  CHECK(progdiff::nn::count_parameters(net) == net.parameter_count());
  const HostTensor<T> x = fixture_tensor<T>(f, "x");
  const HostTensor<T> y = net.forward(x, fixture_tensor<T>(f, "t"));
  check_close<T>(y, fixture_tensor<T>(f, "y"), kTolerance<T>, "y");
  check_close<T>(net.backward(fixture_tensor<T>(f, "dy")), fixture_tensor<T>(f, "dx"), kTolerance<T>, "dx");
  check_parameter_grads<T>(net, f, kTolerance<T>);
}

TEST_CASE("the DDPM++ blocks work in shared-encoder and separate-experts models") {
  using Tiny = TinyDdpmpp<double>;
  using Multi =
      unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                             unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::AttentionHeads<2>,
                             unet::ResBlockResampling, unet::SkipRescale, unet::ScaleShiftTime, unet::DdpmppAttention,
                             unet::ElementType<double>, unet::Decoders<2>>;
  Generator gen(23);
  const auto x = random_tensor<double>(Shape{3, 3, 16, 16}, gen);
  const auto t = Tiny::timestep_tensor(std::vector<double>{5.0, 400.0, 900.0});
  const std::vector<std::int64_t> interval{0, 1, 1};

  // Decoder 1 of a shared-encoder model computes what a unified net of the same parameters does.
  unet::MultiDecoderWidths widths = Multi::default_widths(8, {8, 8});
  widths.decoder_groups = {4, 4};  // the unified net's GroupNorm groups
  Multi multi(widths, Multi::default_config());
  multi.initialize(gen);
  multi.set_training(false);
  Tiny single;
  single.set_training(false);
  auto from = progdiff::prune::parameters_by_name(multi);
  auto to = progdiff::prune::parameters_by_name(single);
  for (auto& [name, p] : to) {
    std::string source = name.starts_with("up.") || name.starts_with("norm_out") || name.starts_with("conv_out")
                             ? "decoder.1." + name
                             : "encoder." + name;
    REQUIRE_MESSAGE(from.count(source) == 1, source);
    if (name.starts_with("conv_out")) {  // the unified net has 6 outputs (learned variance): fill the first 3
      std::vector<double> v = p->value.to_host(), src = from.at(source)->value.to_host();
      std::copy(src.begin(), src.end(), v.begin());
      p->value = HostTensor<double>::from_host(p->value.shape(), v);
    } else {
      p->value = from.at(source)->value.clone();
    }
  }
  const auto ym = multi.forward(x, t, interval).to_host();
  const auto ys = single.forward(x, t).to_host();
  for (std::int64_t i = 1; i < 3; ++i)
    for (std::int64_t j = 0; j < 3 * 16 * 16; ++j) {
      const std::size_t m = static_cast<std::size_t>(i * 3 * 256 + j), s = static_cast<std::size_t>(i * 6 * 256 + j);
      REQUIRE(ym[m] == doctest::Approx(ys[s]).epsilon(1e-12));
    }
  CHECK(multi.backward(HostTensor<double>::full(Shape{3, 3, 16, 16}, 1.0)).shape() == x.shape());

  unet::SeparateExperts<Tiny, 2> experts;
  experts.initialize(gen);
  const auto ye = experts.forward(x, t, interval);
  CHECK(ye.shape() == Shape{3, 6, 16, 16});
}

TEST_CASE("VarianceScalingInit: DDPM++'s bounds, zero biases and last convolutions, a zero first output") {
  using Net = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                         unet::BaseChannels<32>, unet::GroupNormGroups<4>, unet::ResBlockResampling, unet::SkipRescale,
                         unet::VarianceScalingInit, unet::ElementType<double>>;
  Net net;
  Generator gen(29);
  net.initialize(gen);
  int zero_layers = 0, scaled_layers = 0;
  for (auto& [name, p] : progdiff::prune::parameters_by_name(net)) {
    CAPTURE(name);
    const Shape s = p->value.shape();
    const std::vector<double> v = p->value.to_host();
    double max_abs = 0.0, sum_sq = 0.0;
    for (double e : v) {
      max_abs = std::max(max_abs, std::abs(e));
      sum_sq += e * e;
    }
    if (name.ends_with(".gamma")) {
      CHECK(max_abs == 1.0);
      continue;
    }
    const bool last = name.ends_with(".conv2.weight") || name.ends_with(".proj.weight") || name == "conv_out.weight";
    if (s.rank() < 2 || last) {
      CHECK(max_abs == 0.0);
      zero_layers += last;
      continue;
    }
    // TensorFlow's variance_scaling(scale, "fan_avg", "uniform"): U(-b, b), b = sqrt(3 s / fan_avg).
    std::int64_t receptive = 1;
    for (int d = 2; d < s.rank(); ++d) receptive *= s[d];
    const bool qkv = name.ends_with(".qkv.weight");
    const double fan_in = double(s[1] * receptive), fan_out = double(s[0] * receptive) / (qkv ? 3 : 1);
    const double bound = std::sqrt(3.0 * (qkv ? 0.1 : 1.0) / ((fan_in + fan_out) / 2));
    CHECK(max_abs <= bound);
    if (v.size() >= 4096) {  // the sample variance of U(-b, b) is b^2 / 3 (5% is ~4 standard errors)
      CHECK(sum_sq / double(v.size()) == doctest::Approx(bound * bound / 3).epsilon(0.05));
      CHECK(max_abs > 0.99 * bound);
    }
    ++scaled_layers;
  }
  CHECK(zero_layers > 5);
  CHECK(scaled_layers > 10);
  const auto y = net.forward(HostTensor<double>::from_host(Shape{2, 3, 16, 16}, std::vector<double>(1536, 0.5)),
                             std::vector<double>{1.0, 500.0});
  for (double e : y.to_host()) REQUIRE(e == 0.0);
}

TEST_CASE("the CIFAR-10 presets have the papers' parameter and FLOP counts") {
  const auto f = read_fixture("presets");
  // Multiply-accumulates of convolutions and linear layers for one 32x32 image: FLOPs / 2
  // without attention's two matrix products per block (2 * 2 * HW * HW * C FLOPs each).
  const auto conv_linear_macs = [](auto& net) {
    using S = typename std::remove_cvref_t<decltype(net)>::spec;
    double attention = 0.0;
    for (const auto& layers : {unet::encoder_layout<S>(32), unet::decoder_layout<S>(32)})
      for (const auto& layer : layers)
        if (!layer.attention.empty()) {
          const double hw = double(layer.side * layer.side);
          attention += 4.0 * hw * hw * double(net.widths().at(layer.name));
        }
    return (double(net.flops(Shape{1, 3, 32, 32})) - attention) / 2;
  };
  SUBCASE("DDPM: 35.7M parameters (Ho et al. 2020, App. B)") {
    unet::DdpmCifar10<unet::UNet> net;
    CHECK(net.parameter_count() == meta_int(f, "ddpm_cifar10.parameters"));
    CHECK(double(net.parameter_count()) == doctest::Approx(35.7e6).epsilon(0.02));
    CHECK(conv_linear_macs(net) == double(meta_int(f, "ddpm_cifar10.macs")));
  }
  SUBCASE("IDDPM: 52.5M parameters, 8.14 GFLOPs (TDC and step-adaptive papers, Table 1)") {
    unet::IddpmCifar10<unet::UNet> net;
    CHECK(net.config().heads == 4);
    CHECK(net.parameter_count() == meta_int(f, "iddpm_cifar10.parameters"));
    CHECK(double(net.parameter_count()) == doctest::Approx(52.5e6).epsilon(0.02));
    CHECK(conv_linear_macs(net) == double(meta_int(f, "iddpm_cifar10.macs")));
    CHECK(conv_linear_macs(net) == doctest::Approx(8.14e9).epsilon(0.02));
    MESSAGE("IDDPM CIFAR-10: " << net.parameter_count() << " parameters, " << conv_linear_macs(net) / 1e9
                               << " G multiply-accumulates");
  }
  SUBCASE("DDPM++ and DDPM++ deep: the score-SDE configurations built in PyTorch") {
    unet::DdpmppCifar10<unet::UNet> net;
    CHECK(net.parameter_count() == meta_int(f, "ddpmpp_cifar10.parameters"));
    CHECK(conv_linear_macs(net) == double(meta_int(f, "ddpmpp_cifar10.macs")));
    unet::DdpmppDeepCifar10<unet::UNet> deep;
    CHECK(deep.parameter_count() == meta_int(f, "ddpmpp_deep_cifar10.parameters"));
    CHECK(conv_linear_macs(deep) == double(meta_int(f, "ddpmpp_deep_cifar10.macs")));
  }
}

}  // namespace progdiff_tests_ddpmpp

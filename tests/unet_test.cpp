// U-Net tests: PyTorch fixture, FLOPs and parameters against the PyTorch benchmark model and
// closed forms, central differences, per-sample routing of the multi-decoder and expert models.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "layer_support.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/interval_routed.hpp"
#include "progdiff/sample/denoiser.hpp"
#include "progdiff/unet/interval_model.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/separate_experts.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_unet {

namespace {

using namespace layer_test;
namespace unet = progdiff::unet;
using progdiff::ConfigError;
using progdiff::Generator;
using progdiff::Shape;
using progdiff::ShapeError;

// The fixture's net: base 8, levels 1-2, one ResBlock, attention at 8x8 of 16x16 images, 4 groups.
template <class T>
using TinyNet = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<8>, unet::ImageSize<16>,
                           unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::ElementType<T>>;

// Gradient-check size: 8x8 images of 2 channels, base 4, 2 groups.
template <int K>
using GradMulti =
    unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>,
                           unet::ImageChannels<2>, unet::BaseChannels<4>, unet::GroupNormGroups<2>,
                           unet::DropoutPercent<0>, unet::ElementType<double>, unet::Decoders<K>>;
using GradNet =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>, unet::ImageChannels<2>,
               unet::BaseChannels<4>, unet::GroupNormGroups<2>, unet::DropoutPercent<0>, unet::ElementType<double>>;

// --- closed forms (DDPM layout) ------------------------------------------------------------------
struct Cost {
  std::int64_t params = 0, flops = 0;  // per image
};
std::int64_t res_params(std::int64_t ci, std::int64_t co, std::int64_t e) {
  return 2 * ci + 9 * ci * co + co + e * co + co + 2 * co + 9 * co * co + co + (ci != co ? ci * co + co : 0);
}
std::int64_t res_flops(std::int64_t ci, std::int64_t co, std::int64_t e, std::int64_t hw) {
  return 2 * hw * (9 * ci * co + 9 * co * co + (ci != co ? ci * co : 0)) + 2 * e * co;
}
std::int64_t attn_params(std::int64_t c) { return 2 * c + 3 * c * c + 3 * c + c * c + c; }
std::int64_t attn_flops(std::int64_t c, std::int64_t hw) { return 2 * hw * 4 * c * c + 4 * hw * hw * c; }

// Encoder of base be, decoder of base bd; DDPM attention (every block at `attn`, middle too)
// or a single encoder attention (last block of the first attention level, as the benchmark).
Cost closed_form(std::int64_t channels, std::int64_t side, std::vector<std::int64_t> mult, int blocks,
                 std::int64_t attn, bool every_block, std::int64_t be, std::int64_t bd) {
  Cost c;
  const std::int64_t e = 4 * be;
  c.params += be * e + e + e * e + e + 9 * channels * be + be;
  c.flops += 2 * (be * e + e * e) + 2 * side * side * 9 * channels * be;
  std::vector<std::int64_t> skips{be};
  std::int64_t cur = be, s = side;
  bool placed = false;
  for (std::size_t l = 0; l < mult.size(); ++l, s /= 2) {
    for (int j = 0; j < blocks; ++j) {
      const std::int64_t co = be * mult[l];
      c.params += res_params(cur, co, e);
      c.flops += res_flops(cur, co, e, s * s);
      cur = co;
      if (s == attn && (every_block || (!placed && j + 1 == blocks))) {
        c.params += attn_params(cur);
        c.flops += attn_flops(cur, s * s);
        placed = true;
      }
      skips.push_back(cur);
    }
    if (l + 1 < mult.size()) {
      c.params += 9 * cur * cur + cur;
      c.flops += 2 * (s / 2) * (s / 2) * 9 * cur * cur;
      skips.push_back(cur);
    }
  }
  s *= 2;
  c.params += 2 * res_params(cur, cur, e);
  c.flops += 2 * res_flops(cur, cur, e, s * s);
  if (every_block) {
    c.params += attn_params(cur);
    c.flops += attn_flops(cur, s * s);
  }
  for (std::size_t l = mult.size(); l-- > 0;) {
    for (int j = 0; j <= blocks; ++j) {
      const std::int64_t ci = cur + skips.back(), co = bd * mult[l];
      skips.pop_back();
      c.params += res_params(ci, co, e);
      c.flops += res_flops(ci, co, e, s * s);
      cur = co;
      if (every_block && s == attn) {
        c.params += attn_params(cur);
        c.flops += attn_flops(cur, s * s);
      }
    }
    if (l > 0) {
      s *= 2;
      c.params += 9 * cur * cur + cur;
      c.flops += 2 * s * s * 9 * cur * cur;
    }
  }
  c.params += 2 * cur + 9 * cur * channels + channels;
  c.flops += 2 * side * side * 9 * cur * channels;
  return c;
}

template <class T, class Net>
HostTensor<T> run(Net& net, const HostTensor<T>& x, const std::vector<double>& t) {
  return net.forward(x, Net::timestep_tensor(t));
}

// Central differences for the named parameters of `net` against the backward gradients
// `grads` (in visit order); every probe name must exist.
template <class Net, class Grads, class Loss>
void check_probed_parameters(Net& net, const Grads& grads, Loss& loss, const std::vector<std::string>& probe) {
  std::size_t checked = 0, i = 0;
  net.visit_parameters(
      [&](const std::string& name, auto& p) {
        if (std::find(probe.begin(), probe.end(), name) != probe.end()) {
          check_gradient(p.value, grads[i].second, loss, "parameter " + name, 1e-5, 1e-6, 8);
          ++checked;
        }
        ++i;
      },
      std::string());
  CHECK(checked == probe.size());
}

}  // namespace

TEST_CASE_TEMPLATE("UNet forward and backward match PyTorch", T, float, double) {
  const auto f = progdiff::io::read_safetensors(std::string(PROGDIFF_FIXTURES_DIR) + "/unet/unet_tiny.safetensors");
  TinyNet<T> net;
  net.set_training(false);
  load_parameters<T>(net, f);
  CHECK(net.parameter_count() == meta_int(f, "parameters"));
  const HostTensor<T> x = fixture_tensor<T>(f, "x");
  const HostTensor<T> y = net.forward(x, fixture_tensor<T>(f, "t"));
  CHECK(f.metadata.at("format_version") == "2");
  // float: our float arithmetic against float64 PyTorch; double: rounding only (the fixture
  // stores float64 results of float32-exact inputs and parameters).
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-12;
  check_close<T>(y, fixture_tensor<T>(f, "y"), tol, "y");
  const HostTensor<T> dx = net.backward(fixture_tensor<T>(f, "dy"));
  check_close<T>(dx, fixture_tensor<T>(f, "dx"), tol, "dx");
  check_parameter_grads<T>(net, f, tol);
}

TEST_CASE("UNet FLOPs and parameters match the PyTorch benchmark model") {
  // The PyTorch comparison model (docs/baselines.md; the `cifar` model of
  // benchmarks/compare_pytorch_model.py with one image channel), counted by PyTorch: 6,138,369
  // parameters; MACs per 32x32 image:
  // conv 1,428,291,584 + linear 557,056 + attention bmm 16,777,216.
  using Bench = unet::UNet<unet::Levels<1, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>,
                           unet::SingleEncoderAttention, unet::ImageChannels<1>, unet::ImageSize<32>>;
  Bench net;
  CHECK(net.parameter_count() == 6138369);
  CHECK(net.flops(Shape{1, 1, 32, 32}) == 2 * (1428291584LL + 557056LL + 16777216LL));
  CHECK(net.flops(Shape{4, 1, 32, 32}) == 4 * net.flops(Shape{1, 1, 32, 32}));
  CHECK(progdiff::nn::count_parameters(net) == net.parameter_count());
  const Cost c = closed_form(1, 32, {1, 2, 2}, 2, 16, false, 64, 64);
  CHECK(c.params == 6138369);
  CHECK(c.flops == net.flops(Shape{1, 1, 32, 32}));
}

TEST_CASE("UNet FLOPs and parameters match the closed form and the sum of the layers") {
  using Cifar = unet::UNet<unet::Levels<1, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>>;
  Cifar cifar;
  const Cost c = closed_form(3, 32, {1, 2, 2}, 2, 16, true, 64, 64);
  CHECK(cifar.parameter_count() == c.params);
  CHECK(progdiff::nn::count_parameters(cifar) == c.params);
  CHECK(cifar.flops(Shape{1, 3, 32, 32}) == c.flops);

  // DDPM's CIFAR-10 model: 35.7M parameters (Ho et al. 2020, Sec. 4)
  using DdpmCifar = unet::UNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>, unet::ImageSize<32>,
                               unet::BaseChannels<128>>;
  const DdpmCifar ddpm;
  CHECK(ddpm.parameter_count() == closed_form(3, 32, {1, 2, 2, 2}, 2, 16, true, 128, 128).params);
  CHECK(ddpm.parameter_count() / 100000 == 357);

  TinyNet<float> tiny;
  const Cost t = closed_form(3, 16, {1, 2}, 1, 8, true, 8, 8);
  CHECK(tiny.parameter_count() == t.params);
  CHECK(progdiff::nn::count_parameters(tiny) == t.params);
  CHECK(tiny.flops(Shape{2, 3, 16, 16}) == 2 * t.flops);
}

TEST_CASE("UNet takes and returns an explicit width table") {
  using Net = TinyNet<float>;
  auto widths = Net::default_widths();
  CHECK(widths.size() == 14);
  CHECK(widths.at("down.1.res.0") == 16);
  CHECK(widths.at("temb.out") == 32);
  // a pruned shape: narrower blocks, still multiples of the 4 groups
  for (auto& w : widths.layers)
    if (w.layer == "down.1.res.0" || w.layer == "up.0.res.1") w.channels = 12;
  Net net(widths, Net::default_config());
  CHECK(net.widths() == widths);
  Generator gen(3);
  net.initialize(gen);
  net.set_training(false);
  const auto x = random_tensor<float>(Shape{2, 3, 16, 16}, gen);
  const auto y = run<float>(net, x, {5, 600});
  CHECK(y.shape() == x.shape());
  std::int64_t visited = 0;
  net.visit_parameters(
      [&](const std::string& name, auto& p) {
        if (name == "down.1.res.0.conv1.weight") {
          CHECK(p.value.shape() == Shape{12, 8, 3, 3});
          ++visited;
        }
        if (name == "up.0.res.1.conv1.weight") {  // input: up.0.res.0 (8) + skip conv_in (8)
          CHECK(p.value.shape() == Shape{12, 16, 3, 3});
          ++visited;
        }
      },
      std::string());
  CHECK(visited == 2);
}

TEST_CASE("visit_random_state names every ResBlock's dropout as its parameters, and counts training forwards") {
  TinyNet<float> net;  // DropoutPercent<10> by default
  Generator gen(8);
  net.initialize(gen);
  std::vector<std::string> parameters, dropouts;
  net.visit_parameters([&](const std::string& name, auto&) { parameters.push_back(name); }, std::string());
  net.visit_random_state(
      [&](const std::string& name, auto& d) {
        dropouts.push_back(name);
        CHECK(d.config().p == doctest::Approx(0.1));
        CHECK(d.calls() == 0);
      },
      std::string());
  // Levels<1, 2>, ResBlocks<1>: 2 down, 2 middle and 2 x 2 up ResBlocks
  REQUIRE(dropouts.size() == 8);
  CHECK(dropouts.front() == "down.0.res.0.dropout");
  CHECK(dropouts.back() == "up.0.res.1.dropout");
  for (const auto& d : dropouts) {
    const std::string block = d.substr(0, d.size() - std::string(".dropout").size());
    CHECK_MESSAGE(std::find(parameters.begin(), parameters.end(), block + ".norm2.gamma") != parameters.end(), d);
  }
  const auto x = random_tensor<float>(Shape{1, 3, 16, 16}, gen);
  run<float>(net, x, {10});
  net.set_training(false);
  run<float>(net, x, {10});  // evaluation draws no mask
  net.visit_random_state([&](const std::string&, auto& d) { CHECK(d.calls() == 1); }, std::string());

  GradMulti<2> multi(GradMulti<2>::default_widths(4, {4, 4}), GradMulti<2>::default_config());
  std::vector<std::string> names;
  multi.visit_random_state([&](const std::string& name, auto&) { names.push_back(name); }, std::string());
  REQUIRE(names.size() == 4 + 2 * 4);
  CHECK(names[0] == "encoder.down.0.res.0.dropout");
  CHECK(names[4] == "decoder.0.up.1.res.0.dropout");
  CHECK(names.back() == "decoder.1.up.0.res.1.dropout");
}

TEST_CASE("UNet gradients match central differences") {
  GradNet net([] {
    auto c = GradNet::default_config();
    return c;
  }());
  Generator gen(11);
  net.initialize(gen);
  const auto x = random_tensor<double>(Shape{2, 2, 8, 8}, gen);
  const auto w = random_tensor<double>(Shape{2, 2, 8, 8}, gen);
  const std::vector<double> t{7, 420};
  auto xv = x.clone();
  auto loss = [&] { return project(w, run<double>(net, xv, t)); };
  progdiff::nn::zero_grad(net);
  run<double>(net, xv, t);
  const auto dx = net.backward(w);
  check_gradient(xv, dx, loss, "input x", 1e-5, 1e-6, 12);
  const auto grads = parameter_gradients(net);
  const std::vector<std::string> probe{"temb.linear_1.weight",
                                       "conv_in.weight",
                                       "down.0.res.0.conv1.weight",
                                       "down.0.downsample.conv.weight",
                                       "mid.attn.qkv.weight",
                                       "mid.res.1.norm2.gamma",
                                       "up.1.res.0.skip.weight",
                                       "up.1.attn.1.proj.weight",
                                       "up.0.res.1.conv2.bias",
                                       "norm_out.beta",
                                       "conv_out.weight"};
  check_probed_parameters(net, grads, loss, probe);
}

TEST_CASE("MultiDecoderUNet gradients match central differences") {
  using Net = GradMulti<2>;
  Net net(Net::default_widths(4, {8, 4}), Net::default_config());
  Generator gen(12);
  net.initialize(gen);
  const auto x = random_tensor<double>(Shape{3, 2, 8, 8}, gen);
  const auto w = random_tensor<double>(Shape{3, 2, 8, 8}, gen);
  const std::vector<std::int64_t> interval{1, 0, 1};
  const auto t = GradNet::timestep_tensor(std::vector<double>{900, 20, 610});
  auto xv = x.clone();
  auto loss = [&] { return project(w, net.forward(xv, t, interval)); };
  progdiff::nn::zero_grad(net);
  net.forward(xv, t, interval);
  const auto dx = net.backward(w);
  check_gradient(xv, dx, loss, "input x", 1e-5, 1e-6, 12);
  const auto grads = parameter_gradients(net);
  const std::vector<std::string> probe{"encoder.temb.linear_2.weight",       "encoder.down.1.res.0.conv2.weight",
                                       "encoder.mid.res.0.temb_proj.weight", "decoder.0.up.1.res.0.conv1.weight",
                                       "decoder.0.up.0.res.1.skip.weight",   "decoder.1.up.1.attn.0.qkv.weight",
                                       "decoder.1.conv_out.weight"};
  check_probed_parameters(net, grads, loss, probe);
}

TEST_CASE("MultiDecoderUNet routes each sample to its interval's decoder") {
  using Net = GradMulti<3>;
  Net net(Net::default_widths(4, {8, 4, 2}), Net::default_config());
  Generator gen(21);
  net.initialize(gen);
  const auto x = random_tensor<double>(Shape{4, 2, 8, 8}, gen);
  const auto w = random_tensor<double>(Shape{4, 2, 8, 8}, gen);
  const std::vector<double> t{100, 900, 130, 950};
  const std::vector<std::int64_t> mixed{0, 2, 0, 2};

  progdiff::nn::zero_grad(net);
  const auto y = net.forward(x, GradNet::timestep_tensor(t), mixed);
  net.backward(w);
  const auto together = parameter_gradients(net);

  // The same samples in two separate runs, one per interval; encoder gradients add up.
  const std::vector<std::int64_t> rows0{0, 2}, rows2{1, 3};
  progdiff::nn::zero_grad(net);
  const auto y0 = net.forward(unet::gather_rows(x, rows0), GradNet::timestep_tensor(std::vector<double>{100, 130}),
                              std::vector<std::int64_t>{0, 0});
  net.backward(unet::gather_rows(w, rows0));
  const auto y2 = net.forward(unet::gather_rows(x, rows2), GradNet::timestep_tensor(std::vector<double>{900, 950}),
                              std::vector<std::int64_t>{2, 2});
  net.backward(unet::gather_rows(w, rows2));
  const auto separate = parameter_gradients(net);

  check_close<double>(unet::gather_rows(y, rows0), y0, 1e-12, "interval 0 outputs");
  check_close<double>(unet::gather_rows(y, rows2), y2, 1e-12, "interval 2 outputs");
  REQUIRE(together.size() == separate.size());
  int decoder1 = 0, decoder0_nonzero = 0;
  for (std::size_t i = 0; i < together.size(); ++i) {
    const auto& [name, g] = together[i];
    check_close<double>(g, separate[i].second, 1e-10, "gradient of " + name);
    const auto v = g.to_host();
    const bool all_zero = std::all_of(v.begin(), v.end(), [](double e) { return e == 0.0; });
    if (name.rfind("decoder.1.", 0) == 0) {
      ++decoder1;
      CHECK_MESSAGE(all_zero, name);
    }
    if (name.rfind("decoder.0.", 0) == 0 && !all_zero) ++decoder0_nonzero;
  }
  CHECK(decoder1 > 0);
  CHECK(decoder0_nonzero > 0);
}

TEST_CASE("SeparateExperts route samples and fit the sampler's Denoiser concept") {
  using Net = unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>,
                         unet::ImageChannels<2>, unet::BaseChannels<4>, unet::GroupNormGroups<2>>;
  using Experts = unet::SeparateExperts<Net, 2>;
  using Multi = GradMulti<3>;
  static_assert(unet::IntervalModel<Experts>);
  static_assert(unet::IntervalModel<Multi>);
  static_assert(progdiff::sample::Denoiser<progdiff::model::IntervalRouted<Experts>, float, Cpu>);
  static_assert(progdiff::sample::Denoiser<progdiff::model::IntervalRouted<Multi>, double, Cpu>);

  auto cfg = Net::default_config();
  cfg.dropout = 0.0;
  auto narrow = Net::default_widths(6);
  Experts built({Net::default_widths(), narrow}, cfg);
  CHECK(built.widths()[1] == narrow);
  Generator gen(5);
  built.initialize(gen);
  const auto x = random_tensor<float>(Shape{3, 2, 8, 8}, gen);
  progdiff::group::Partition partition{{0, 500, 1000}, {}};
  progdiff::model::IntervalRouted<Experts> denoiser(std::move(built), partition);
  Experts& experts = denoiser.inner();
  const std::vector<std::int64_t> ts{10, 700, 499};
  const auto y = denoiser.predict(x, ts);
  const auto y1 = run<float>(experts.expert(1), unet::gather_rows(x, std::vector<std::int64_t>{1}), {700});
  const auto y0 = run<float>(experts.expert(0), unet::gather_rows(x, std::vector<std::int64_t>{0, 2}), {10, 499});
  check_close<float>(unet::gather_rows(y, std::vector<std::int64_t>{1}), y1, 1e-6, "expert 1");
  check_close<float>(unet::gather_rows(y, std::vector<std::int64_t>{0, 2}), y0, 1e-6, "expert 0");
  CHECK(experts.flops(Shape{1, 2, 8, 8}, 1) == closed_form(2, 8, {1, 2}, 1, 4, true, 6, 6).flops);
  CHECK(experts.parameter_count() ==
        closed_form(2, 8, {1, 2}, 1, 4, true, 4, 4).params + closed_form(2, 8, {1, 2}, 1, 4, true, 6, 6).params);
}

TEST_CASE("Multi-decoder FLOPs per interval and averaged over timesteps") {
  // The paper's layout (encoder 128, decoders 192, 128, 16) at a quarter of the width, so the
  // test allocates little: encoder 32, decoders 64, 32, 8 (groups 16, 8, 2).
  using Multi = unet::MultiDecoderUNet<unet::Levels<1, 2, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<16>,
                                       unet::ImageSize<32>, unet::BaseChannels<32>, unet::Decoders<3>>;
  auto cfg = Multi::default_config();
  cfg.groups = 8;
  Multi net(Multi::default_widths(32, {64, 32, 8}), cfg);
  const auto widths = net.widths();
  CHECK(widths.decoder_groups == std::vector<std::int64_t>{16, 8, 2});
  const Shape image{1, 3, 32, 32};
  const Cost wide = closed_form(3, 32, {1, 2, 2, 2}, 2, 16, true, 32, 64);
  const Cost same = closed_form(3, 32, {1, 2, 2, 2}, 2, 16, true, 32, 32);
  const Cost narrow = closed_form(3, 32, {1, 2, 2, 2}, 2, 16, true, 32, 8);
  CHECK(net.flops(image, 0) == wide.flops);
  CHECK(net.flops(image, 1) == same.flops);
  CHECK(net.flops(image, 2) == narrow.flops);
  CHECK(net.parameter_count(1) == same.params);
  CHECK(net.parameter_count(2) == narrow.params);
  const std::int64_t encoder = net.encoder_flops(image);
  // each closed form counts the shared encoder once
  CHECK(net.parameter_count() == wide.params + same.params + narrow.params - 2 * net.encoder().parameter_count());
  const progdiff::group::Partition p{{0, 300, 600, 1000}, {}};
  const auto fractions = unet::interval_fractions(p);
  const double avg = unet::average_flops(unet::flops_per_interval(net, image), fractions);
  CHECK(avg == doctest::Approx(0.3 * wide.flops + 0.3 * same.flops + 0.4 * narrow.flops).epsilon(1e-12));
  CHECK(avg == doctest::Approx(encoder + 0.3 * net.decoder_flops(image, 0) + 0.3 * net.decoder_flops(image, 1) +
                               0.4 * net.decoder_flops(image, 2))
                   .epsilon(1e-12));
  CHECK_THROWS_AS(unet::average_flops({1, 2}, {0.5, 0.6}), ConfigError);
  CHECK_THROWS_AS(unet::average_flops({1, 2}, {1.0}), ConfigError);
}

TEST_CASE("UNet rejects bad inputs and width tables, naming shapes and layers") {
  using Net = TinyNet<float>;
  Net net;
  Generator gen(1);
  const auto t = Net::timestep_tensor(std::vector<double>{1, 2});
  check_throws_naming<ShapeError>(
      [&] {
        net.forward(random_tensor<float>(Shape{2, 3, 8, 8}, gen), t);
      },
      {"[2, 3, 8, 8]", "[2, 3, 16, 16]"});
  check_throws_naming<ShapeError>(
      [&] {
        net.forward(random_tensor<float>(Shape{2, 1, 16, 16}, gen), t);
      },
      {"[2, 1, 16, 16]", "[2, 3, 16, 16]"});
  check_throws_naming<ShapeError>([&] { net.flops(Shape{1, 3, 32, 32}); }, {"[1, 3, 32, 32]", "[1, 3, 16, 16]"});

  auto shorter = Net::default_widths();
  shorter.layers.pop_back();
  check_throws_naming<ConfigError>([&] { Net bad(shorter, Net::default_config()); },
                                   {"expected 14 layers", "up.0.res.1", "got 13"});
  auto renamed = Net::default_widths();
  renamed.layers[5].layer = "down.0.res.7";
  check_throws_naming<ConfigError>([&] { Net bad(renamed, Net::default_config()); },
                                   {"down.0.res.7", "down.0.downsample"});
  auto odd = Net::default_widths();
  for (auto& w : odd.layers)
    if (w.layer == "down.1.res.0") w.channels = 10;
  check_throws_naming<ConfigError>([&] { Net bad(odd, Net::default_config()); }, {"down.1.res.0", "10", "4"});
  auto odd_decoder = Net::default_widths();
  for (auto& w : odd_decoder.layers)
    if (w.layer == "up.0.res.0") w.channels = 6;
  check_throws_naming<ConfigError>([&] { Net bad(odd_decoder, Net::default_config()); }, {"up.0.res.0", "6"});
  auto cfg = Net::default_config();
  cfg.image_size = 32;
  check_throws_naming<ConfigError>([&] { Net bad(cfg); }, {"32", "ImageSize<16>"});

  using Multi = GradMulti<2>;
  auto mw = Multi::default_widths(4, {8, 4});
  mw.decoder_groups[1] = 3;
  check_throws_naming<ConfigError>([&] { Multi bad(mw, Multi::default_config()); }, {"decoder 1", "up.1.res.0"});
  Multi multi(Multi::default_widths(4, {8, 4}), Multi::default_config());
  const auto x = layer_test::random_tensor<double>(Shape{2, 2, 8, 8}, gen);
  const auto td = GradNet::timestep_tensor(std::vector<double>{1, 2});
  check_throws_naming<ConfigError>(
      [&] {
        multi.forward(x, td, std::vector<std::int64_t>{0, 2});
      },
      {"sample 1", "interval 2"});
  check_throws_naming<ShapeError>([&] { multi.forward(x, td, std::vector<std::int64_t>{0}); }, {"[2, 2, 8, 8]"});
  check_throws_naming<ConfigError>(
      [&] {
        progdiff::model::IntervalRouted<Multi> d(multi, progdiff::group::Partition{{0, 1000}, {}});
      },
      {"1 groups", "2"});
}

TEST_CASE("MultiDecoderUNet default widths choose GroupNorm groups that divide the decoder's inputs with skips") {
  // The main job's default multi-stage model: encoder 32, decoders 48, 32 and 8 wide. Decoder 0's
  // first up-block sees 64 + 64 channels; min(48 / 4, 16) = 12 groups do not divide them.
  using Multi = unet::MultiDecoderUNet<unet::Levels<1, 2, 2>, unet::ResBlocks<1>, unet::AttentionAt<>,
                                       unet::ImageSize<32>, unet::ImageChannels<1>, unet::BaseChannels<32>,
                                       unet::GroupNormGroups<8>, unet::DropoutPercent<0>, unet::Decoders<3>>;
  const auto w = Multi::default_widths(32, {48, 32, 8});
  CHECK(w.decoder_groups == std::vector<std::int64_t>{8, 8, 2});  // 12 lowered to 8, the others as narrow_groups
  CHECK_NOTHROW(Multi(w, Multi::default_config()));
  // Where narrow_groups already divides everything, it is kept (the multi-stage paper's widths).
  const auto paper = Multi::default_widths(128, {192, 128, 16});
  CHECK(paper.decoder_groups == std::vector<std::int64_t>{16, 16, 4});
}

}  // namespace progdiff_tests_unet

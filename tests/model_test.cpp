// Progressive and IntervalRouted models: routing by timestep (closed forms: rows computed alone,
// zero gradient outside a group), deep copies for stage 2, FLOPs averaged over timesteps,
// descriptions that tell models apart in checkpoints, the samplers driving both models, and
// dropout masks keyed by global sample index through the routing.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/model/model.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/sample/stepper.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_model {

namespace {

namespace unet = progdiff::unet;
namespace model = progdiff::model;
using progdiff::Generator;
using progdiff::Shape;
using Cpu = progdiff::backend::Cpu;
using Tensor = progdiff::Tensor<double, Cpu>;

using Net =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<0>, unet::ElementType<double>>;
using Multi = unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                                     unet::ImageChannels<1>, unet::BaseChannels<8>, unet::GroupNormGroups<4>,
                                     unet::DropoutPercent<0>, unet::ElementType<double>, unet::Decoders<2>>;

static_assert(model::check_grouped_model<model::Progressive<Net>>());
static_assert(model::check_grouped_model<model::IntervalRouted<Multi>>());
static_assert(progdiff::sample::Denoiser<model::Progressive<Net>, double, Cpu>);
static_assert(progdiff::sample::Denoiser<model::IntervalRouted<Multi>, double, Cpu>);

// A narrower net of the same type: every ResBlock of level 0 and the decoder halved (a pruned group).
unet::WidthTable pruned_widths() {
  unet::WidthTable w = Net::default_widths();
  for (auto& l : w.layers)
    if (l.layer.find(".0.res.") != std::string::npos || l.layer == "up.1.res.1") l.channels /= 2;
  return w;
}

Tensor random_tensor(Shape s, std::uint64_t seed) {
  Generator g(seed);
  std::vector<double> v(static_cast<std::size_t>(s.numel()));
  for (double& x : v) x = g.normal<double>();
  return Tensor::from_host(s, v);
}

model::Progressive<Net> two_groups(std::uint64_t seed) {
  Generator gen(seed);
  Net a, b(pruned_widths(), Net::default_config());
  a.initialize(gen);
  b.initialize(gen);
  return model::Progressive<Net>(progdiff::group::Partition{{0, 40, 100}, {}}, {std::move(a), std::move(b)});
}

std::vector<double> rows(const Tensor& t, std::int64_t begin, std::int64_t end) {
  return t.slice(begin, end).to_host();
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST_CASE("Progressive routes each sample to its group's denoiser; other groups get no gradient") {
  auto m = two_groups(3);
  const Tensor x = random_tensor(Shape{3, 1, 8, 8}, 7);
  const std::vector<std::int64_t> t{5, 60, 99};  // groups 0, 1, 1
  const Tensor y = m.forward(x, t);
  // each net alone on its rows (GroupNorm and attention act per sample, so rows are independent)
  const Tensor t0 = Tensor::from_host(Shape{1}, std::vector<double>{5});
  const Tensor t1 = Tensor::from_host(Shape{2}, std::vector<double>{60, 99});
  CHECK(max_abs_diff(rows(y, 0, 1), m.denoiser(0).forward(x.slice(0, 1).clone(), t0).to_host()) < 1e-12);
  CHECK(max_abs_diff(rows(y, 1, 3), m.denoiser(1).forward(x.slice(1, 3).clone(), t1).to_host()) < 1e-12);
  m.backward(Tensor::full(y.shape(), 1.0));  // clears the stray caches of the two single-net forwards too

  // Fractional timesteps (continuous-time samplers) go to the group of the nearest grid index:
  // 4.6 -> 5 (group 0), 59.5 -> 60 and 99.2 -> 99 (group 1), each net seeing t as it is.
  const std::vector<double> tf{4.6, 59.5, 99.2};
  const Tensor yf = m.predict(x, std::span<const double>(tf));
  const Tensor tf0 = Tensor::from_host(Shape{1}, std::vector<double>{4.6});
  const Tensor tf1 = Tensor::from_host(Shape{2}, std::vector<double>{59.5, 99.2});
  m.set_training(false);
  const auto want0 = m.denoiser(0).forward(x.slice(0, 1).clone(), tf0).to_host();
  const auto want1 = m.denoiser(1).forward(x.slice(1, 3).clone(), tf1).to_host();
  m.set_training(true);
  CHECK(max_abs_diff(rows(yf, 0, 1), want0) < 1e-12);
  CHECK(max_abs_diff(rows(yf, 1, 3), want1) < 1e-12);

  m.visit_parameters([](const std::string&, auto& p) { p.zero_grad(); }, std::string());
  const std::vector<std::int64_t> only0{0, 17, 39};
  const Tensor y0 = m.forward(x, only0);
  m.backward(Tensor::full(y0.shape(), 1.0));
  double g0 = 0, g1 = 0;
  m.visit_group_parameters(
      0,
      [&](const std::string&, auto& p) {
        for (double v : p.grad.to_host()) g0 += std::abs(v);
      },
      std::string());
  m.visit_group_parameters(
      1,
      [&](const std::string&, auto& p) {
        for (double v : p.grad.to_host()) g1 += std::abs(v);
      },
      std::string());
  CHECK(g0 > 0);
  CHECK(g1 == 0.0);

  int names = 0;
  m.visit_parameters([&](const std::string& name, auto&) { names += name.rfind("group1.", 0) == 0; }, std::string());
  CHECK(names > 0);
  CHECK_THROWS_AS(m.forward(x, std::vector<std::int64_t>{0, 1, 100}), progdiff::ConfigError);
}

TEST_CASE("copies_of clones the base: identical predictions at copy time, separate weights after") {
  Generator gen(11);
  Net base_net;
  base_net.initialize(gen);
  model::Progressive<Net> base(std::move(base_net), 100);
  const Tensor x = random_tensor(Shape{4, 1, 8, 8}, 5);
  const std::vector<std::int64_t> t{3, 30, 70, 99};
  const auto before = base.predict(x, t).to_host();
  auto grouped = model::Progressive<Net>::copies_of(base.denoiser(0), {{0, 25, 50, 100}, {}}, gen);
  REQUIRE(grouped.group_count() == 3);
  CHECK(max_abs_diff(grouped.predict(x, t).to_host(), before) < 1e-12);
  grouped.visit_group_parameters(
      1, [](const std::string&, auto& p) { p.value.fill(0.25); }, std::string());
  CHECK(max_abs_diff(base.predict(x, t).to_host(), before) == 0.0);
  CHECK(max_abs_diff(rows(grouped.predict(x, t), 1, 2), rows(base.predict(x, t), 1, 2)) > 1e-6);
}

TEST_CASE("average FLOPs weight each group's FLOPs by its share of the timesteps") {
  auto m = two_groups(1);
  const Shape image{1, 1, 8, 8};
  const double f0 = static_cast<double>(m.denoiser(0).flops(image));
  const double f1 = static_cast<double>(m.denoiser(1).flops(image));
  CHECK(f1 < f0);
  CHECK(m.flops(image, 1) == m.denoiser(1).flops(image));
  CHECK(m.average_flops(image) == doctest::Approx(0.4 * f0 + 0.6 * f1).epsilon(1e-12));
  CHECK(m.parameter_count() == m.denoiser(0).parameter_count() + m.denoiser(1).parameter_count());
}

TEST_CASE("the description names structure, widths per group and boundaries; checkpoints refuse a different one") {
  auto m = two_groups(2);
  const auto d = m.describe();
  CHECK(d.at("model.kind") == "progressive");
  CHECK(d.at("model.structure") ==
        "levels=1,2 res_blocks=1 attention=none layout=ddpm image=8 channels=1 "
        "time_multiplier=4 dtype=f64");
  CHECK(d.at("model.boundaries") == "0,40,100");
  CHECK(d.at("group0.width.down.0.res.0") == "8");
  CHECK(d.at("group1.width.down.0.res.0") == "4");
  CHECK(d.at("group1.width.mid.res.0") == "16");

  Generator gen(4);
  auto rebuilt = model::Progressive<Net>::from_description(d, gen);
  CHECK(rebuilt.widths() == m.widths());
  CHECK(rebuilt.partition().starts == m.partition().starts);

  const auto path = std::filesystem::temp_directory_path() / "progdiff_model_test.safetensors";
  progdiff::io::save_checkpoint(path, m, d, {});
  // group 1 unpruned: the width keys differ and are named
  auto other = model::Progressive<Net>::copies_of(m.denoiser(0), {{0, 40, 100}, {}}, gen);
  try {
    progdiff::io::load_checkpoint(path, other, other.describe());
    FAIL("a checkpoint of other widths loaded");
  } catch (const progdiff::ConfigError& e) {
    const std::string what = e.what();
    CHECK(what.find("key 'group1.width.down.0.res.0': expected '8', found '4'") != std::string::npos);
  }
  auto moved = model::Progressive<Net>::copies_of(m.denoiser(0), {{0, 50, 100}, {}}, gen);
  CHECK_THROWS_WITH_AS(progdiff::io::load_checkpoint(path, moved, moved.describe()),
                       doctest::Contains("key 'model.boundaries': expected '0,50,100', found '0,40,100'"),
                       progdiff::ConfigError);
  std::filesystem::remove(path);
}

TEST_CASE("samplers drive a Progressive unchanged: copies of one net sample as the net alone") {
  Generator gen(21);
  Net net;
  net.initialize(gen);
  model::Progressive<Net> unified(std::move(net), 100);
  auto grouped = model::Progressive<Net>::copies_of(unified.denoiser(0), {{0, 30, 100}, {}}, gen);
  const auto sampler = progdiff::sample::Ddim::from_schedule(progdiff::schedule::Linear<100>{}, 10);
  const auto a = progdiff::sample::generate<double, Cpu>(sampler, unified, Shape{3, 1, 8, 8}, 9).to_host();
  const auto b = progdiff::sample::generate<double, Cpu>(sampler, grouped, Shape{3, 1, 8, 8}, 9).to_host();
  CHECK(max_abs_diff(a, b) < 1e-9);
  double norm = 0;
  for (double v : a) norm += v * v;
  CHECK(std::isfinite(norm));
  CHECK(norm > 0);
}

TEST_CASE("IntervalRouted wraps a shared-encoder U-Net: routing, per-group parameters, description") {
  Generator gen(8);
  Multi net(Multi::default_widths(8, {8, 4}), Multi::default_config());
  net.initialize(gen);
  model::IntervalRouted<Multi> m(std::move(net), {{0, 60, 100}, {}});
  static_assert(model::IntervalRouted<Multi>::shares_parameters);
  const Tensor x = random_tensor(Shape{2, 1, 8, 8}, 3);
  const std::vector<std::int64_t> t{10, 80};
  const Tensor y = m.predict(x, t);
  const std::vector<std::int64_t> k{0, 1};
  const Tensor direct = m.inner().forward(x, Tensor::from_host(Shape{2}, std::vector<double>{10, 80}), k);
  CHECK(max_abs_diff(y.to_host(), direct.to_host()) == 0.0);
  m.inner().backward(Tensor::full(y.shape(), 1.0));

  std::vector<std::string> names;
  m.visit_group_parameters(
      1, [&](const std::string& n, auto&) { names.push_back(n); }, std::string());
  REQUIRE(!names.empty());
  for (const auto& n : names) CHECK(n.rfind("decoder.1.", 0) == 0);

  const auto d = m.describe();
  CHECK(d.at("model.kind") == "multi_decoder");
  CHECK(d.at("encoder.width.conv_in") == "8");
  CHECK(d.at("decoder1.width.up.0.res.0") == "4");
  CHECK(d.at("decoder1.groupnorm_groups") == "1");
  CHECK(d.at("model.boundaries") == "0,60,100");
  const Shape image{1, 1, 8, 8};
  CHECK(m.average_flops(image) ==
        doctest::Approx(0.6 * static_cast<double>(m.flops(image, 0)) + 0.4 * static_cast<double>(m.flops(image, 1))));
}

namespace {

using DropNet =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<20>, unet::ElementType<double>>;
using DropMulti =
    unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<>, unet::ImageSize<8>,
                           unet::ImageChannels<1>, unet::BaseChannels<8>, unet::GroupNormGroups<4>,
                           unet::DropoutPercent<20>, unet::ElementType<double>, unet::Decoders<2>>;

// Training forwards of a batch of 4 in both groups (10, 20: group 0; 70, 90: group 1), at once
// and as the halves two ranks would compute (global samples 0-1 and 2-3), each from the same
// mask counts: every sample's output is the same, its masks keyed by its global index inside
// its group's gathered sub-batch too. Without the offset the second half draws other masks.
template <class M>
void check_masks_follow_samples(M& m) {
  const Tensor x = random_tensor(Shape{4, 1, 8, 8}, 21);
  const std::vector<std::int64_t> t{10, 70, 90, 20};
  std::vector<std::uint64_t> calls;
  m.visit_random_state([&](const std::string&, auto& d) { calls.push_back(d.calls() + 5); }, std::string());
  REQUIRE(!calls.empty());
  auto forward = [&](std::int64_t begin, std::int64_t end, std::uint64_t offset) {
    std::size_t i = 0;
    m.visit_random_state([&](const std::string&, auto& d) { d.set_calls(calls[i++]); }, std::string());
    m.set_sample_offset(offset);
    const std::span<const std::int64_t> ts(t.begin() + begin, t.begin() + end);
    return m.forward(x.slice(begin, end), ts).to_host();
  };
  const Tensor whole = Tensor::from_host(Shape{4, 1, 8, 8}, forward(0, 4, 0));
  CHECK(max_abs_diff(forward(0, 2, 0), rows(whole, 0, 2)) <= 1e-12);
  CHECK(max_abs_diff(forward(2, 4, 2), rows(whole, 2, 4)) <= 1e-12);
  CHECK(max_abs_diff(forward(2, 4, 0), rows(whole, 2, 4)) > 1e-6);
  // evaluation mode draws nothing: the offset does not matter
  m.set_training(false);
  CHECK(max_abs_diff(forward(2, 4, 0), forward(2, 4, 2)) == 0.0);
}

}  // namespace

TEST_CASE("dropout masks follow the sample's global index through a model's routing, not the batch split") {
  SUBCASE("Progressive: each group's net on its gathered rows") {
    Generator gen(4);
    DropNet a, b;
    a.initialize(gen);
    b.initialize(gen);
    model::Progressive<DropNet> m(progdiff::group::Partition{{0, 40, 100}, {}}, {std::move(a), std::move(b)});
    check_masks_follow_samples(m);
  }
  SUBCASE("IntervalRouted: the shared encoder on the batch, each decoder on its rows") {
    Generator gen(5);
    DropMulti net(DropMulti::default_widths(8, {8, 4}), DropMulti::default_config());
    net.initialize(gen);
    model::IntervalRouted<DropMulti> m(std::move(net), {{0, 60, 100}, {}});
    check_masks_follow_samples(m);
  }
}

}  // namespace progdiff_tests_model

// Structural pruning tests: dependency groups of the U-Nets, output-preserving removal of
// redundant channels for every coupling (identity and projecting residuals, skip concatenation,
// attention, GroupNorm, shared-encoder decoders), FLOPs against an independent count from the
// parameter shapes, prune_to_flops, each importance policy on constructed cases (Taylor against
// central differences), checkpoints of pruned models and the search space.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/nn/layer.hpp"
#include "progdiff/prune/prune.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_prune {

namespace {

namespace unet = progdiff::unet;
namespace prune = progdiff::prune;
using progdiff::ConfigError;
using progdiff::Generator;
using progdiff::Shape;
using progdiff::Tensor;
using Cpu = progdiff::backend::Cpu;

// 8x8 images of 2 channels; levels of 8 and 16 channels; attention at 4x4 (level 1 and middle)
// with 2 heads; 2 GroupNorm groups; time embedding 2 * base.
#define PRUNE_TEST_OPTIONS                                                                                  \
  unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>, unet::ImageChannels<2>, \
      unet::BaseChannels<8>, unet::GroupNormGroups<2>, unet::TimeEmbedding<2>, unet::DropoutPercent<0>,     \
      unet::ElementType<double>
using Net = unet::UNet<PRUNE_TEST_OPTIONS>;
using Multi = unet::MultiDecoderUNet<PRUNE_TEST_OPTIONS, unet::Decoders<2>>;

unet::UNetConfig test_config() {
  unet::UNetConfig c = Net::default_config();
  c.heads = 2;
  c.dropout = 0.0;
  return c;
}

Net make_net(std::uint64_t seed = 1) {
  Net net(Net::default_widths(), test_config());
  Generator gen(seed);
  net.initialize(gen);
  net.set_training(false);
  return net;
}

Multi make_multi(std::uint64_t seed = 2) {
  Multi net(Multi::default_widths(8, {8, 4}), test_config());
  Generator gen(seed);
  net.initialize(gen);
  net.set_training(false);
  return net;
}

Tensor<double, Cpu> random_tensor(Shape s, std::uint64_t seed, double scale = 1.0) {
  Generator gen(seed);
  std::vector<double> v(static_cast<std::size_t>(s.numel()));
  for (auto& x : v) x = scale * (2.0 * gen.uniform() - 1.0);
  return Tensor<double, Cpu>::from_host(s, v);
}

const std::vector<double> kTimesteps{3.0, 410.5, 999.0};

Tensor<double, Cpu> run(Net& net, const Tensor<double, Cpu>& x) { return net.forward(x, kTimesteps); }
Tensor<double, Cpu> run(Multi& net, const Tensor<double, Cpu>& x) {
  const std::vector<std::int64_t> interval{0, 1, 1};
  return net.forward(x, Net::timestep_tensor(kTimesteps), interval);
}

// The DDPM++ / IDDPM blocks: resampling ResBlocks, skip rescaling, scale-shift time
// conditioning and DDPM++'s decoder attention (PyTorch's default initialization, so that no
// branch is zero).
#define PRUNE_TEST_DDPMPP unet::ResBlockResampling, unet::SkipRescale, unet::ScaleShiftTime, unet::DdpmppAttention
using Ddpmpp = unet::UNet<PRUNE_TEST_OPTIONS, PRUNE_TEST_DDPMPP>;
using DdpmppMulti = unet::MultiDecoderUNet<PRUNE_TEST_OPTIONS, PRUNE_TEST_DDPMPP, unet::Decoders<2>>;

Ddpmpp make_ddpmpp(std::uint64_t seed = 3) {
  Ddpmpp net(Ddpmpp::default_widths(), test_config());
  Generator gen(seed);
  net.initialize(gen);
  net.set_training(false);
  return net;
}

DdpmppMulti make_ddpmpp_multi(std::uint64_t seed = 4) {
  DdpmppMulti net(DdpmppMulti::default_widths(8, {8, 4}), test_config());
  Generator gen(seed);
  net.initialize(gen);
  net.set_training(false);
  return net;
}

Tensor<double, Cpu> run(Ddpmpp& net, const Tensor<double, Cpu>& x) { return net.forward(x, kTimesteps); }
Tensor<double, Cpu> run(DdpmppMulti& net, const Tensor<double, Cpu>& x) {
  const std::vector<std::int64_t> interval{0, 1, 1};
  return net.forward(x, Net::timestep_tensor(kTimesteps), interval);
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}
double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Makes the odd channels of the groups in `halve` redundant: a channel slice of channel 2m+1
// becomes a copy of channel 2m's, its consumers' columns and its attention q/k rows become zero.
// Then each GroupNorm group and head holds pairs of equal channels, and removing one of each pair
// changes neither a group's mean and variance nor any sum that reads the channels.
template <class M>
void make_odd_channels_redundant(M& net, const prune::ChannelGroups& groups, const std::vector<bool>& halve) {
  auto params = prune::parameters_by_name(net);
  std::map<std::string, std::vector<double>> values;
  for (auto& [name, p] : params) {
    auto v = p->value.to_host();
    values[name] = std::vector<double>(v.begin(), v.end());
  }
  for (int pass = 0; pass < 2; ++pass)  // zero first, then copy the (already zeroed) rows
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (!halve[g]) continue;
      const auto& group = groups.groups[g];
      for (const auto& sl : group.slices) {
        const bool copy = sl.role == prune::SliceRole::channel;
        if (copy != (pass == 1)) continue;
        const Shape shape = params.at(sl.parameter)->value.shape();
        std::int64_t inner = 1;
        for (int a = sl.axis + 1; a < shape.rank(); ++a) inner *= shape[a];
        const std::int64_t outer = shape.numel() / (inner * shape[sl.axis]);
        auto& v = values[sl.parameter];
        for (std::int64_t j = 1; j < group.width; j += 2)
          for (std::int64_t o = 0; o < outer; ++o)
            for (std::int64_t i = 0; i < inner; ++i) {
              const auto at = [&](std::int64_t c) {
                return static_cast<std::size_t>((o * shape[sl.axis] + sl.offset + c) * inner + i);
              };
              v[at(j)] = copy ? v[at(j - 1)] : 0.0;
            }
      }
    }
  for (auto& [name, p] : params) p->value = Tensor<double, Cpu>::from_host(p->value.shape(), values[name]);
}

// Scores that rank even channels above odd ones.
prune::ChannelScores even_first(const prune::ChannelGroups& groups) {
  prune::ChannelScores s;
  for (const auto& g : groups.groups) {
    s.emplace_back();
    for (std::int64_t j = 0; j < g.width; ++j) s.back().push_back(j % 2 == 0 ? 1.0 : 0.0);
  }
  return s;
}

// The couplings a group exercises, for the test log.
std::string couplings(const prune::ChannelGroup& g) {
  std::string c;
  auto has = [&](const std::string& part, int axis, bool nonzero_offset) {
    for (const auto& s : g.slices)
      if (s.parameter.find(part) != std::string::npos && s.axis == axis && (!nonzero_offset || s.offset > 0))
        return true;
    return false;
  };
  if (g.layers.size() > 1) c += " identity-residual";
  if (has(".skip.weight", 0, false)) c += " projecting-residual";
  if (has(".conv1.weight", 1, true)) c += " skip-concat";
  if (g.attention) c += " attention";
  if (has(".norm", 0, false)) c += " groupnorm";
  if (has("decoder.1.", 1, false) && has("decoder.0.", 1, false)) c += " shared-by-decoders";
  return c;
}

// Whether a group shares a GroupNorm over a skip concatenation with another group. Such a norm
// keeps its group count, so its groups re-form over the concatenation unless both parts shrink
// in proportion: halving the group alone is not output-preserving; halving all groups is.
bool in_concat_norm(const prune::ChannelGroups& groups, const prune::ChannelGroup& g) {
  std::vector<std::string> concat_norms;
  for (const auto& other : groups.groups)
    for (const auto& s : other.slices)
      if (s.parameter.find(".norm1.gamma") != std::string::npos && s.offset > 0) concat_norms.push_back(s.parameter);
  for (const auto& s : g.slices)
    if (std::find(concat_norms.begin(), concat_norms.end(), s.parameter) != concat_norms.end()) return true;
  return false;
}

// Halving `halve` after making their odd channels redundant leaves the outputs unchanged.
template <class M>
void check_halving_preserves_outputs(M& net, const std::vector<bool>& halve) {
  const prune::ChannelGroups groups = prune::channel_groups(net);
  make_odd_channels_redundant(net, groups, halve);
  std::vector<std::int64_t> widths = groups.widths();
  for (std::size_t g = 0; g < groups.size(); ++g)
    if (halve[g]) widths[g] /= 2;
  REQUIRE(groups.feasible(widths));
  const auto x = random_tensor(net.input_shape(3), 7);
  const auto y = run(net, x).to_host();
  M pruned = prune::prune_unet(net, even_first(groups), widths);
  const auto yp = run(pruned, x).to_host();
  const double diff = max_diff(y, yp), scale = max_abs(y);
  CHECK(scale > 0.1);
  CHECK(diff <= 1e-12 * scale);
  CHECK(prune::channel_groups(pruned).flops() < groups.flops());
}

// check_halving_preserves_outputs for each prunable group alone (each a subcase on the net
// make(group_seed + g); groups that cannot halve alone or share a norm over a skip concatenation
// are skipped), then for all prunable groups at once on make(all_seed). Returns how many groups
// were checked alone.
template <class Make>
int check_halving_each_group_then_all(const prune::ChannelGroups& groups, const Make& make, std::uint64_t group_seed,
                                      std::uint64_t all_seed) {
  int tested = 0;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (!groups.groups[g].prunable) continue;
    std::vector<bool> halve(groups.size(), false);
    halve[g] = true;
    std::vector<std::int64_t> w = groups.widths();
    w[g] /= 2;
    if (!groups.feasible(w) || in_concat_norm(groups, groups.groups[g])) continue;
    SUBCASE(("group " + groups.groups[g].name + couplings(groups.groups[g])).c_str()) {
      auto net = make(group_seed + g);
      check_halving_preserves_outputs(net, halve);
    }
    ++tested;
  }
  SUBCASE("all groups at once") {
    auto net = make(all_seed);
    std::vector<bool> halve(groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) halve[g] = groups.groups[g].prunable;
    check_halving_preserves_outputs(net, halve);
  }
  return tested;
}

// Every parameter axis that carries channels is covered by exactly one group slice per index;
// only image-channel and kernel axes are not.
template <class M>
void check_slices_cover_every_channel_axis(M& net, std::int64_t image_channels) {
  const prune::ChannelGroups groups = prune::channel_groups(net);
  std::map<std::string, std::vector<std::vector<int>>> covered;  // [param][axis][index] = count
  auto params = prune::parameters_by_name(net);
  for (auto& [name, p] : params) {
    const Shape s = p->value.shape();
    covered[name].resize(static_cast<std::size_t>(std::min(2, s.rank())));
    for (int a = 0; a < std::min(2, s.rank()); ++a) covered[name][a].assign(static_cast<std::size_t>(s[a]), 0);
  }
  for (const auto& g : groups.groups)
    for (const auto& sl : g.slices) {
      REQUIRE_MESSAGE(covered.count(sl.parameter) == 1, sl.parameter);
      for (std::int64_t j = 0; j < g.width; ++j) ++covered[sl.parameter][sl.axis].at(sl.offset + j);
    }
  for (auto& [name, axes] : covered)
    for (std::size_t a = 0; a < axes.size(); ++a) {
      const bool image_axis = (name.find("conv_in.weight") != std::string::npos && a == 1) ||
                              (name.find("conv_out.") != std::string::npos && a == 0);
      for (std::size_t i = 0; i < axes[a].size(); ++i) {
        INFO(name << " axis " << a << " index " << i);
        CHECK(axes[a][i] == (image_axis ? 0 : 1));
      }
      if (image_axis) CHECK(static_cast<std::int64_t>(axes[a].size()) == image_channels);
    }
}

// FLOPs of one sample from the parameter shapes alone: 2 * in * out * k * k * output pixels per
// convolution (pixels from the layer's name: level l works at side / 2^l), 2 * in * out per linear
// layer, and 4 * HW^2 * C for an attention block's two attention products.
template <class M>
double flops_from_parameter_shapes(M& net, std::int64_t side, int levels) {
  double f = 0.0;
  auto params = prune::parameters_by_name(net);
  for (auto& [name, p] : params) {
    const Shape s = p->value.shape();
    if (name.find(".weight") == std::string::npos || s.rank() < 2) continue;
    if (name.find("norm") != std::string::npos) continue;
    std::int64_t level = 0;
    for (const char* part : {"down.", "up."}) {
      const auto at = name.find(part);
      if (at != std::string::npos) level = std::stoi(name.substr(at + std::string(part).size()));
    }
    if (name.find("mid.") != std::string::npos) level = levels - 1;
    std::int64_t out_side = side >> level;
    if (name.find("downsample") != std::string::npos) out_side = side >> (level + 1);
    if (name.find("upsample") != std::string::npos) out_side = side >> (level - 1);
    const double hw = static_cast<double>(out_side * out_side);
    if (s.rank() == 2) {
      f += 2.0 * double(s[0]) * double(s[1]);
    } else if (name.find("temb_proj") != std::string::npos) {
      f += 2.0 * double(s[0]) * double(s[1]);
    } else {
      f += 2.0 * hw * double(s[0]) * double(s[1]) * double(s[2]) * double(s[3]);
      if (name.find("attn") != std::string::npos && name.find(".proj.") != std::string::npos)
        f += 4.0 * hw * hw * double(s[0]);
    }
  }
  return f;
}

}  // namespace

TEST_CASE("channel groups follow the U-Net's couplings") {
  Net net = make_net();
  const prune::ChannelGroups groups = prune::channel_groups(net);
  // conv_in feeds down.0.res.0 (8 -> 8, identity residual): one group; likewise down.1.res.0 and
  // the two middle blocks (16 -> 16 -> 16).
  const auto& g0 = groups.groups[groups.index_of("conv_in")];
  CHECK(groups.index_of("down.0.res.0") == groups.index_of("conv_in"));
  CHECK(g0.width == 8);
  CHECK(groups.index_of("mid.res.1") == groups.index_of("down.1.res.0"));
  CHECK(groups.index_of("down.0.downsample") != groups.index_of("down.1.res.0"));
  CHECK_FALSE(groups.groups[groups.index_of("temb.sinusoid")].prunable);
  // down.0.downsample's output is the skip of up.1.res.1, concatenated after the 16 channels of
  // up.1.res.0: it owns [16, 24) of that block's input.
  const auto& ds = groups.groups[groups.index_of("down.0.downsample")];
  bool concat_slice = false;
  for (const auto& s : ds.slices)
    concat_slice = concat_slice || (s.parameter == "up.1.res.1.conv1.weight" && s.axis == 1 && s.offset == 16);
  CHECK(concat_slice);
  // The attention of level 1: q, k, v rows at 0, 16, 32, two heads and two GroupNorm groups.
  const auto& att = groups.groups[groups.index_of("down.1.res.0")];
  std::vector<std::int64_t> qkv_offsets;
  for (const auto& s : att.slices)
    if (s.parameter == "down.1.attn.0.qkv.weight" && s.axis == 0) qkv_offsets.push_back(s.offset);
  CHECK(qkv_offsets == std::vector<std::int64_t>{0, 16, 32});
  CHECK(att.attention);
  CHECK(att.segments == 2);
  CHECK(groups.projections.size() == 5);  // down.1.res.0 (8 -> 16) and the four decoder blocks
  check_slices_cover_every_channel_axis(net, 2);
  Multi multi = make_multi();
  check_slices_cover_every_channel_axis(multi, 2);
}

TEST_CASE("removing redundant channels leaves a U-Net's output unchanged, coupling by coupling") {
  const int tested = check_halving_each_group_then_all(
      prune::channel_groups(make_net()), [](std::uint64_t seed) { return make_net(seed); }, 10, 5);
  CHECK(tested >= 4);
}

TEST_CASE("removing redundant channels leaves a shared-encoder model's output unchanged") {
  check_halving_each_group_then_all(
      prune::channel_groups(make_multi()), [](std::uint64_t seed) { return make_multi(seed); }, 20, 6);
}

TEST_CASE("FLOPs of pruned models equal the count from their parameter shapes") {
  Net net = make_net();
  const prune::ChannelGroups groups = prune::channel_groups(net);
  CHECK(groups.flops() == doctest::Approx(flops_from_parameter_shapes(net, 8, 2)).epsilon(1e-12));
  CHECK(groups.flops() == doctest::Approx(double(net.flops(net.input_shape(1)))).epsilon(1e-12));
  const double limit = 0.45 * groups.flops();
  const prune::FlopsPlan plan =
      prune::plan_widths_for_flops(groups, prune::MagnitudeImportance{}.scores(net, groups), limit);
  Net small = prune::prune_to_flops(net, prune::MagnitudeImportance{}, limit);
  const double counted = flops_from_parameter_shapes(small, 8, 2);
  CHECK(counted == doctest::Approx(double(small.flops(small.input_shape(1)))).epsilon(1e-12));
  CHECK(counted == doctest::Approx(plan.flops).epsilon(1e-12));
  CHECK(counted <= limit);
  CHECK(plan.flops_before_last_step > limit);  // one step less would not meet the limit
  CHECK(small.parameter_count() < net.parameter_count());
  MESSAGE("prune_to_flops: " << groups.flops() << " -> " << counted << " FLOPs (limit " << limit << ") in "
                             << plan.steps << " steps");
  // Multi-decoder: the average over intervals of encoder + decoder k.
  Multi multi = make_multi();
  const prune::ChannelGroups mg = prune::channel_groups(multi);
  const double mean = 0.5 * double(multi.flops(multi.input_shape(1), 0) + multi.flops(multi.input_shape(1), 1));
  CHECK(mg.flops() == doctest::Approx(mean).epsilon(1e-12));
  Multi msmall = prune::prune_to_flops(multi, prune::RandomImportance{3}, 0.6 * mean);
  const double msmall_mean =
      0.5 * double(msmall.flops(msmall.input_shape(1), 0) + msmall.flops(msmall.input_shape(1), 1));
  CHECK(msmall_mean <= 0.6 * mean);
  CHECK(prune::channel_groups(msmall).flops() == doctest::Approx(msmall_mean).epsilon(1e-12));
}

TEST_CASE("infeasible widths are refused with the group or block named") {
  Net net = make_net();
  const prune::ChannelGroups groups = prune::channel_groups(net);
  const auto scores = even_first(groups);
  auto w = groups.widths();
  w[groups.index_of("down.1.res.0")] = 15;  // not a multiple of the 2 GroupNorm groups / heads
  CHECK_THROWS_WITH_AS(prune::prune_unet(net, scores, w), doctest::Contains("down.1.res.0"), ConfigError);
  w = groups.widths();
  w[groups.index_of("up.0.res.1")] = 16;  // input 8 (up.0.res.0) + 8 (conv_in skip) = 16 = output
  CHECK_THROWS_WITH_AS(prune::prune_unet(net, scores, w), doctest::Contains("up.0.res.1"), ConfigError);
  w = groups.widths();
  w[groups.index_of("temb.sinusoid")] = 4;
  CHECK_THROWS_WITH_AS(prune::prune_unet(net, scores, w), doctest::Contains("not prunable"), ConfigError);
  CHECK_THROWS_AS(prune::prune_unet(net, prune::ChannelScores{}, groups.widths()), ConfigError);
  CHECK_THROWS_AS(prune::prune_to_flops(net, scores, 1.0), ConfigError);
}

TEST_CASE("magnitude importance is the L1 / L2 norm of a channel's group weights") {
  Net net = make_net();
  const prune::ChannelGroups groups = prune::channel_groups(net);
  // temb.hidden: row j of linear_1 (weight and bias) and column j of linear_2. Shrink channel 5.
  auto p = prune::parameters_by_name(net);
  auto w1 = p["temb.linear_1.weight"]->value.to_host();
  const std::int64_t in = p["temb.linear_1.weight"]->value.dim(1);
  for (std::int64_t i = 0; i < in; ++i) w1[static_cast<std::size_t>(5 * in + i)] *= 1e-3;
  p["temb.linear_1.weight"]->value = Tensor<double, Cpu>::from_host(Shape{16, in}, w1);
  auto w2 = p["temb.linear_2.weight"]->value.to_host();
  for (std::int64_t o = 0; o < 16; ++o) w2[static_cast<std::size_t>(o * 16 + 5)] *= 1e-3;
  p["temb.linear_2.weight"]->value = Tensor<double, Cpu>::from_host(Shape{16, 16}, w2);
  const auto b1 = p["temb.linear_1.bias"]->value.to_host();
  const std::size_t g = groups.index_of("temb.hidden");
  const auto l1 = prune::MagnitudeImportance{prune::Norm::l1}.scores(net, groups)[g];
  const auto l2 = prune::MagnitudeImportance{prune::Norm::l2}.scores(net, groups)[g];
  for (std::int64_t j = 0; j < 16; ++j) {
    double s1 = std::abs(b1[j]), s2 = b1[j] * b1[j];
    for (std::int64_t i = 0; i < in; ++i) {
      s1 += std::abs(w1[j * in + i]);
      s2 += w1[j * in + i] * w1[j * in + i];
    }
    for (std::int64_t o = 0; o < 16; ++o) {
      s1 += std::abs(w2[o * 16 + j]);
      s2 += w2[o * 16 + j] * w2[o * 16 + j];
    }
    CHECK(l1[j] == doctest::Approx(s1).epsilon(1e-12));
    CHECK(l2[j] == doctest::Approx(std::sqrt(s2)).epsilon(1e-12));
  }
  // Keeping 15 of 16 removes the smallest-norm channel, 5.
  const auto min_at = std::min_element(l1.begin(), l1.end()) - l1.begin();
  Net small = prune::prune_unet(net, prune::MagnitudeImportance{prune::Norm::l1},
                                std::map<std::string, std::int64_t>{{"temb.hidden", 15}});
  const auto sw1 = prune::parameters_by_name(small)["temb.linear_1.weight"]->value.to_host();
  for (std::int64_t j = 0, k = 0; j < 16; ++j) {
    if (j == min_at) continue;
    for (std::int64_t i = 0; i < in; ++i) CHECK(sw1[k * in + i] == w1[j * in + i]);
    ++k;
  }
  CHECK(small.widths().at("temb.hidden") == 15);
  CHECK(min_at == 5);
}

TEST_CASE("random importance is reproducible by seed") {
  Net net = make_net();
  const prune::ChannelGroups groups = prune::channel_groups(net);
  const auto a = prune::RandomImportance{4}.scores(net, groups);
  const auto b = prune::RandomImportance{4}.scores(net, groups);
  const auto c = prune::RandomImportance{5}.scores(net, groups);
  CHECK(a == b);
  CHECK(a != c);
  for (const auto& g : a)
    for (double s : g) CHECK((s >= 0.0 && s < 1.0));
}

namespace {
// L = sum(y * r): backward of dy = r gives dL/dw.
// The Taylor test's one image, at a middle timestep.
const std::vector<double> kOneTimestep{410.5};

double loss(Net& net, const Tensor<double, Cpu>& x, const std::vector<double>& r) {
  const auto y = net.forward(x, kOneTimestep).to_host();
  double l = 0.0;
  for (std::size_t i = 0; i < y.size(); ++i) l += y[i] * r[i];
  return l;
}
}  // namespace

TEST_CASE("Taylor importance equals sum |w * dL/dw| with dL/dw from central differences") {
  Net net = make_net();
  const prune::ChannelGroups groups = prune::channel_groups(net);
  // One image: every element of a channel costs two forward passes, and the check is per element.
  const auto x = random_tensor(net.input_shape(1), 8);
  const auto rt = random_tensor(net.input_shape(1), 9);
  const auto r = rt.to_host();
  prune::TaylorImportance taylor;
  for (int batch = 0; batch < 2; ++batch) {  // two identical batches: scores double
    progdiff::nn::zero_grad(net);
    net.forward(x, kOneTimestep);
    net.backward(rt);
    taylor.observe(net, groups);
  }
  const auto scores = taylor.scores(net, groups);
  auto params = prune::parameters_by_name(net);
  std::map<std::string, Shape> shapes;
  for (auto& [n, p] : params) shapes[n] = p->value.shape();
  for (const auto& [name, j] :
       std::vector<std::pair<std::string, std::int64_t>>{{"temb.hidden", 3}, {"up.0.res.0", 1}}) {
    const auto& group = groups.groups[groups.index_of(name)];
    double expected = 0.0;
    prune::for_each_channel_element(group, shapes, j, [&](const prune::ChannelSlice& sl, std::int64_t i) {
      auto& value = params[sl.parameter]->value;
      auto v = value.to_host();
      const double w = v[static_cast<std::size_t>(i)], h = 1e-5;
      v[static_cast<std::size_t>(i)] = w + h;
      value = Tensor<double, Cpu>::from_host(value.shape(), v);
      const double lp = loss(net, x, r);
      v[static_cast<std::size_t>(i)] = w - h;
      value = Tensor<double, Cpu>::from_host(value.shape(), v);
      const double lm = loss(net, x, r);
      v[static_cast<std::size_t>(i)] = w;
      value = Tensor<double, Cpu>::from_host(value.shape(), v);
      expected += std::abs(w * (lp - lm) / (2 * h));
    });
    INFO(name << " channel " << j);
    CHECK(scores[groups.index_of(name)][j] == doctest::Approx(2 * expected).epsilon(1e-6));
  }
}

TEST_CASE("Diff-Pruning importance sums gradients over the informative steps only") {
  Net net = make_net();
  const prune::ChannelGroups groups = prune::channel_groups(net);
  const auto x = random_tensor(net.input_shape(3), 8);
  std::vector<std::vector<double>> grads;  // temb.linear_1.weight gradient per step
  prune::DiffPruningImportance diff(0.2);
  const std::vector<double> losses{1.0, 0.5, 0.1};  // the last is below 0.2 * 1.0: skipped
  std::vector<bool> used;
  for (int step = 0; step < 3; ++step) {
    progdiff::nn::zero_grad(net);
    run(net, x);
    net.backward(random_tensor(net.input_shape(3), 30 + step));
    grads.push_back(prune::parameters_by_name(net)["temb.linear_1.weight"]->grad.to_host());
    used.push_back(diff.observe(net, losses[step]));
  }
  CHECK(used == std::vector<bool>{true, true, false});
  CHECK(diff.used_steps() == 2);
  CHECK(diff.skipped_steps() == 1);
  // Channel j of temb.sinusoid (not prunable, but scored): column j of linear_1 only.
  const auto s = diff.scores(net, groups)[groups.index_of("temb.sinusoid")];
  const auto w = prune::parameters_by_name(net)["temb.linear_1.weight"]->value.to_host();
  for (std::int64_t j = 0; j < 8; ++j) {
    double expected = 0.0;
    for (std::int64_t o = 0; o < 16; ++o) {
      const auto e = static_cast<std::size_t>(o * 8 + j);
      expected += std::abs(w[e] * (grads[0][e] + grads[1][e]));
    }
    CHECK(s[j] == doctest::Approx(expected).epsilon(1e-12));
  }
  CHECK_THROWS_AS(prune::DiffPruningImportance(1.5), ConfigError);
}

TEST_CASE("a pruned model of non-uniform widths saves and loads through a checkpoint") {
  Net net = make_net();
  const prune::ChannelGroups groups = prune::channel_groups(net);
  Net small = prune::prune_to_flops(net, prune::MagnitudeImportance{prune::Norm::l1}, 0.6 * groups.flops());
  const auto path = std::filesystem::temp_directory_path() / "progdiff_prune_test.safetensors";
  progdiff::io::save_checkpoint(path, small, {{"widths", "pruned"}}, progdiff::io::TrainingState{});
  Net loaded(small.widths(), small.config());
  progdiff::io::load_checkpoint(path, loaded, {{"widths", "pruned"}});
  std::filesystem::remove(path);
  const auto x = random_tensor(net.input_shape(3), 11);
  CHECK(max_diff(run(small, x).to_host(), run(loaded, x).to_host()) == 0.0);
  CHECK(loaded.widths() != net.widths());
}

TEST_CASE("the U-Net search space matches the channel groups and applies schemes") {
  Net net = make_net();
  const prune::ChannelGroups groups = prune::channel_groups(net);
  const double limit = 0.8 * groups.flops();
  const prune::SearchSpace space = prune::unet_search_space(net, limit, {0, 1, 2});
  space.validate();
  CHECK(space.size() == groups.size() - 1);  // all but temb.sinusoid
  CHECK(space.flops_of(space.full_widths()) == doctest::Approx(groups.flops()));
  const prune::Scheme scheme = prune::scheme_from_ratios(space, {{"down.1.res.0", 0.75}, {"up.1.res.1", 0.5}});
  Net small = prune::apply_scheme(net, space, scheme, prune::MagnitudeImportance{});
  CHECK(small.widths().at("mid.res.1") == 12);
  CHECK(small.widths().at("up.1.res.1") == 8);
  CHECK(double(small.flops(small.input_shape(1))) == doctest::Approx(space.flops_of(scheme.widths)));
  // Equal input and output widths of a projecting block cost +infinity.
  auto w = space.full_widths();
  w[space.index_of("up.0.res.1")] = 16;
  CHECK(std::isinf(space.flops_of(w)));
}

TEST_CASE("the FLOPs model counts a learned-variance U-Net's 2C output channels") {
  // IDDPM's nets (unet::LearnedVariance) end in a convolution with 2C outputs: the prediction and v.
  using LearnedNet = unet::UNet<PRUNE_TEST_OPTIONS, unet::LearnedVariance>;
  using LearnedMulti = unet::MultiDecoderUNet<PRUNE_TEST_OPTIONS, unet::LearnedVariance, unet::Decoders<2>>;
  static_assert(LearnedNet::spec::output_channels == 4);
  LearnedNet net(LearnedNet::default_widths(), test_config());
  Generator gen(21);
  net.initialize(gen);
  net.set_training(false);
  const prune::ChannelGroups groups = prune::channel_groups(net);
  // By hand: conv_out is a 3x3 convolution over 8x8 pixels from the last decoder width, 8
  // channels; the variance head adds C = 2 outputs, 2 * 9 * 64 * 8 * 2 = 18432 FLOPs to the
  // C-output net of the same widths.
  CHECK(groups.flops() - prune::channel_groups(make_net()).flops() == 18432.0);
  CHECK(groups.flops() == doctest::Approx(flops_from_parameter_shapes(net, 8, 2)).epsilon(1e-12));
  CHECK(groups.flops() == doctest::Approx(double(net.flops(net.input_shape(1)))).epsilon(1e-12));

  SUBCASE("pruned to a FLOPs limit, the limit holds for the pruned net's own count") {
    const double limit = 0.5 * groups.flops();
    LearnedNet small = prune::prune_to_flops(net, prune::MagnitudeImportance{}, limit);
    const double counted = double(small.flops(small.input_shape(1)));
    CHECK(counted <= limit);
    CHECK(counted == doctest::Approx(flops_from_parameter_shapes(small, 8, 2)).epsilon(1e-12));
    CHECK(prune::channel_groups(small).flops() == doctest::Approx(counted).epsilon(1e-12));
    const auto x = random_tensor(small.input_shape(3), 22);
    CHECK(small.forward(x, kTimesteps).shape() == Shape{3, 4, 8, 8});
  }
  SUBCASE("shared encoder, two decoders") {
    LearnedMulti multi(LearnedMulti::default_widths(8, {8, 4}), test_config());
    Generator mgen(23);
    multi.initialize(mgen);
    const prune::ChannelGroups mg = prune::channel_groups(multi);
    const double mean = 0.5 * double(multi.flops(multi.input_shape(1), 0) + multi.flops(multi.input_shape(1), 1));
    CHECK(mg.flops() == doctest::Approx(mean).epsilon(1e-12));
    // Decoder 1's last width is 4: (2 * 9 * 64 * 8 * 2 + 2 * 9 * 64 * 4 * 2) / 2 over the C-output model.
    CHECK(mg.flops() - prune::channel_groups(make_multi()).flops() == 0.5 * (18432.0 + 9216.0));
  }
}

TEST_CASE("channel groups cover the DDPM++ blocks: outputs kept, FLOPs counted, a pruned model trains") {
  Ddpmpp net = make_ddpmpp();
  check_slices_cover_every_channel_axis(net, 2);
  const prune::ChannelGroups groups = prune::channel_groups(net);
  // A resampling block always has its 1x1 skip: its output is a group of its own.
  CHECK(groups.index_of("down.0.downsample") != groups.index_of("down.0.res.0"));
  CHECK(groups.index_of("up.1.upsample") != groups.index_of("up.1.res.1"));
  CHECK(groups.flops() == doctest::Approx(flops_from_parameter_shapes(net, 8, 2)).epsilon(1e-12));
  CHECK(groups.flops() == doctest::Approx(double(net.flops(net.input_shape(1)))).epsilon(1e-12));
  const int tested = check_halving_each_group_then_all(
      groups, [](std::uint64_t seed) { return make_ddpmpp(seed); }, 30, 7);
  CHECK(tested >= 4);

  SUBCASE("pruned to 45% of the FLOPs, forward and backward") {
    Ddpmpp small = prune::prune_to_flops(net, prune::MagnitudeImportance{}, 0.45 * groups.flops());
    CHECK(flops_from_parameter_shapes(small, 8, 2) ==
          doctest::Approx(double(small.flops(small.input_shape(1)))).epsilon(1e-12));
    CHECK(small.parameter_count() < net.parameter_count());
    const auto x = random_tensor(small.input_shape(3), 8);
    const auto y = run(small, x);
    CHECK(y.shape() == x.shape());
    const auto dx = small.backward(random_tensor(y.shape(), 9));
    CHECK(dx.shape() == x.shape());
    bool finite_nonzero = false;
    for (double v : dx.to_host()) {
      REQUIRE(std::isfinite(v));
      finite_nonzero = finite_nonzero || v != 0.0;
    }
    CHECK(finite_nonzero);
  }
  SUBCASE("shared encoder, two decoders") {
    DdpmppMulti multi = make_ddpmpp_multi();
    const prune::ChannelGroups mg = prune::channel_groups(multi);
    const double mean = 0.5 * double(multi.flops(multi.input_shape(1), 0) + multi.flops(multi.input_shape(1), 1));
    CHECK(mg.flops() == doctest::Approx(mean).epsilon(1e-12));
    check_halving_each_group_then_all(
        mg, [](std::uint64_t seed) { return make_ddpmpp_multi(seed); }, 50, 9);
    DdpmppMulti msmall = prune::prune_to_flops(multi, prune::RandomImportance{3}, 0.6 * mean);
    const auto x = random_tensor(msmall.input_shape(3), 10);
    const auto y = run(msmall, x);
    CHECK(msmall.backward(random_tensor(y.shape(), 11)).shape() == x.shape());
  }
}

}  // namespace progdiff_tests_prune
#undef PRUNE_TEST_OPTIONS
#undef PRUNE_TEST_DDPMPP

// The Winograd weight cache (backend/cpu/winograd_weight_cache.hpp): a forward with the cached
// transform gives the bits of one without it; the transform runs once while the weights stay
// the same; and every way of changing the weights (an optimizer step, a checkpoint load, an EMA
// copy, a write through visit_parameters or through a tensor sharing the storage, a new
// tensor) reaches the next inference forward, inside one inference scope as well as between
// scopes. On AVX-512 the geometries' pixel counts are not multiples of 64, where the direct
// kernel does not apply: the Winograd kernel runs there whatever the kernel choices. On AVX2 the
// rows of 7 or 17 pixels are ones its Winograd kernel takes, from the machine's crossover in
// channels up (the built-in 16): the cases that count transforms skip visibly where a choices
// file has moved it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "kernel_support.hpp"
#include "progdiff/backend/conv_epilogue.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/matmul_precision.hpp"
#include "progdiff/backend/cpu/winograd_weight_cache.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/optim/ema.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_winograd_weight_cache {

namespace {

namespace pd = progdiff;
using pd::ConvGeometry;
using pd::backend::Cpu;
using pd::backend::cpu::WinogradWeightCache;
using pd::test::cast;
using pd::test::uniform;
using TensorF = pd::Tensor<float, Cpu>;
using Conv = pd::nn::Conv2d<float, Cpu>;

// Bitwise equality (NaN patterns and signed zeros included), which == on floats is not.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::size_t output_size(const ConvGeometry& g) { return std::size_t(g.n * g.c_out * g.out_hw()); }

// The targets whose CPU back end keeps Winograd weights across calls.
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define PROGDIFF_TEST_WEIGHT_CACHE 1
#endif

// Whether the cached path runs Winograd for g on this machine (always for these tests' shapes
// on AVX-512; from the crossover in channels on AVX2).
[[maybe_unused]] bool winograd_runs(const ConvGeometry& g) {
#if defined(__AVX512F__)
  (void)g;
  return true;
#elif defined(__AVX2__) && defined(__FMA__)
  return Cpu::avx2_winograd_runs(g);
#else
  (void)g;
  return false;
#endif
}

// The fewest channels of the shapes below in each of their size classes (7x7; 7x17; 13x13):
// where the machine's crossover is above any, the transform counts are not this machine's to check.
[[maybe_unused]] doctest::skip unless_winograd_runs() {
  return doctest::skip(!winograd_runs(ConvGeometry{2, 16, 7, 7, 16, 3, 3, 1, 1}) ||
                       !winograd_runs(ConvGeometry{1, 70, 7, 17, 80, 3, 3, 1, 1}) ||
                       !winograd_runs(ConvGeometry{2, 24, 13, 13, 20, 3, 3, 1, 1}));
}

// The uncached forward: what conv2d_forward_cached must reproduce. Both helpers serve the
// cases of targets with a cache only, so other targets leave them unused.
[[maybe_unused]] std::vector<float> uncached(const ConvGeometry& g, const std::vector<float>& x,
                                             const std::vector<float>& w, const pd::ConvEpilogue<float>& epilogue) {
  std::vector<float> y(output_size(g), NAN);
  Cpu::conv2d_forward_epilogue<float>(g, x.data(), w.data(), epilogue, y.data());
  return y;
}

[[maybe_unused]] std::vector<float> cached(const ConvGeometry& g, const std::vector<float>& x,
                                           const std::vector<float>& w, const pd::ConvEpilogue<float>& epilogue,
                                           WinogradWeightCache& cache) {
  std::vector<float> y(output_size(g), NAN);
  REQUIRE(Cpu::conv2d_forward_cached<float>(g, x.data(), w.data(), epilogue, y.data(), cache));
  return y;
}

// A Conv2d of c_in -> c_out channels, 3x3 "same", with random weights and bias.
Conv random_conv(std::int64_t c_in, std::int64_t c_out, std::uint64_t seed) {
  Conv conv(pd::nn::Conv2dConfig{c_in, c_out, 3, 1, 1, true});
  pd::Generator gen(seed);
  conv.initialize(gen);
  return conv;
}

// A layer that has never run a forward, with `source`'s weights (deep copies): the reference.
Conv fresh_copy(Conv& source) {
  Conv copy(source.config());
  copy.weight().value.copy_from(source.weight().value);
  copy.bias().value.copy_from(source.bias().value);
  return copy;
}

// An ordinary forward (outside inference mode, so no cache is read) of a fresh copy of `conv`.
std::vector<float> reference_forward(Conv& conv, const TensorF& x) {
  Conv copy = fresh_copy(conv);
  return copy.forward(x).to_host();
}

TensorF random_input(const pd::Shape& shape, std::uint32_t seed) {
  return TensorF::from_host(shape, cast<float>(uniform(std::size_t(shape.numel()), seed)));
}

std::int64_t transforms_of(const Conv& conv) { return conv.weight_cache().transforms(); }

}  // namespace

#if defined(PROGDIFF_TEST_WEIGHT_CACHE)
TEST_CASE("conv2d_forward_cached gives the uncached bits, transforms once, and again when a weight bit changes" *
          unless_winograd_runs()) {
  // Odd channel counts pad c_in and leave part of a c_out panel; 80 outputs take two panels.
  // 13x13 runs F(4x4, 3x3) on AVX2 (its own transform of the weights), the others F(2x2).
  const ConvGeometry cases[] = {
      {2, 24, 7, 7, 20, 3, 3, 1, 1}, {1, 70, 7, 17, 80, 3, 3, 1, 1}, {2, 24, 13, 13, 20, 3, 3, 1, 1}};
  for (const ConvGeometry& g : cases) {
    INFO("c_in=", g.c_in, " c_out=", g.c_out, " h=", g.h, " w=", g.w);
    const auto x = cast<float>(uniform(std::size_t(g.n * g.c_in * g.h * g.w), 1));
    const auto bias = cast<float>(uniform(std::size_t(g.c_out), 2));
    const auto sample_bias = cast<float>(uniform(std::size_t(g.n * g.c_out), 3));
    const auto residual = cast<float>(uniform(output_size(g), 4));
    const pd::ConvEpilogue<float> epilogues[] = {{}, {bias.data()}, {bias.data(), sample_bias.data(), residual.data()}};
    for (const auto& epilogue : epilogues) {
      auto w = cast<float>(uniform(std::size_t(g.c_out * g.c_in * 9), 5));
      WinogradWeightCache cache;
      const auto first = cached(g, x, w, epilogue, cache);
      CHECK(same_bits(first, uncached(g, x, w, epilogue)));
      CHECK(cache.transforms() == 1);
      CHECK(same_bits(cached(g, x, w, epilogue, cache), first));
      CHECK(cache.transforms() == 1);

      // The same bits at another address are the same weights.
      const std::vector<float> moved = w;
      CHECK(same_bits(cached(g, x, moved, epilogue, cache), first));
      CHECK(cache.transforms() == 1);

      // One weight one ulp up, in the second c_out panel where there is one, is rebuilt (the
      // output may round to the same bits).
      const std::size_t k = w.size() - 5;
      w[k] = std::nextafter(w[k], 2.0f);
      CHECK(same_bits(cached(g, x, w, epilogue, cache), uncached(g, x, w, epilogue)));
      CHECK(cache.transforms() == 2);
      // A larger change: a cache that ignored it would give `first`, which the new weights do not.
      w[k] += 0.5f;
      const auto changed = cached(g, x, w, epilogue, cache);
      CHECK(cache.transforms() == 3);
      CHECK(same_bits(changed, uncached(g, x, w, epilogue)));
      CHECK_FALSE(same_bits(changed, first));

      // A sign of zero is a different weight too.
      w[0] = 0.0f;
      CHECK(same_bits(cached(g, x, w, epilogue, cache), uncached(g, x, w, epilogue)));
      w[0] = -0.0f;
      CHECK(same_bits(cached(g, x, w, epilogue, cache), uncached(g, x, w, epilogue)));
      CHECK(cache.transforms() == 5);
    }
  }
}

TEST_CASE("The cache is rebuilt for another shape with as many weights" * unless_winograd_runs()) {
  const ConvGeometry a{1, 32, 7, 7, 48, 3, 3, 1, 1}, b{1, 48, 7, 7, 32, 3, 3, 1, 1};
  const auto w = cast<float>(uniform(std::size_t(32 * 48 * 9), 7));
  const auto xa = cast<float>(uniform(std::size_t(32 * 49), 8)), xb = cast<float>(uniform(std::size_t(48 * 49), 9));
  WinogradWeightCache cache;
  CHECK(same_bits(cached(a, xa, w, {}, cache), uncached(a, xa, w, {})));
  CHECK(same_bits(cached(b, xb, w, {}, cache), uncached(b, xb, w, {})));
  CHECK(same_bits(cached(a, xa, w, {}, cache), uncached(a, xa, w, {})));
  CHECK(cache.transforms() == 3);
}

TEST_CASE("A forward that finds the cache held elsewhere transforms into its own scratch" * unless_winograd_runs()) {
  const ConvGeometry g{2, 16, 7, 7, 16, 3, 3, 1, 1};
  const auto x = cast<float>(uniform(std::size_t(2 * 16 * 49), 11));
  const auto w = cast<float>(uniform(std::size_t(16 * 16 * 9), 12));
  WinogradWeightCache cache;
  {
    // Another thread's forward in progress holds a lease for as long as it runs.
    const WinogradWeightCache::Lease other = cache.lease(g, w.data(), 1);
    REQUIRE(static_cast<bool>(other));
    CHECK_FALSE(static_cast<bool>(cache.lease(g, w.data(), 1)));
    CHECK(same_bits(cached(g, x, w, {}, cache), uncached(g, x, w, {})));
    CHECK(cache.transforms() == 0);
  }
  CHECK(same_bits(cached(g, x, w, {}, cache), uncached(g, x, w, {})));
  CHECK(cache.transforms() == 1);
}

TEST_CASE("conv2d_forward_cached declines where another kernel runs, and a copied cache starts empty" *
          unless_winograd_runs()) {
  const auto w = cast<float>(uniform(std::size_t(16 * 16 * 9), 13));
  const auto x = cast<float>(uniform(std::size_t(16 * 64), 14));
  WinogradWeightCache cache;
  std::vector<float> y(16 * 64, NAN);
  const ConvGeometry strided{1, 16, 8, 8, 16, 3, 3, 2, 1};  // not F(2x2, 3x3)
  CHECK_FALSE(Cpu::conv2d_forward_cached<float>(strided, x.data(), w.data(), {}, y.data(), cache));
  const ConvGeometry g{1, 16, 7, 7, 16, 3, 3, 1, 1};
  const std::vector<double> xd(16 * 49, 0.5), wd(16 * 16 * 9, 0.25);
  std::vector<double> yd(16 * 49, NAN);
  CHECK_FALSE(Cpu::conv2d_forward_cached<double>(g, xd.data(), wd.data(), {}, yd.data(), cache));
  CHECK(std::isnan(y[0]));
  CHECK(std::isnan(yd[0]));
  CHECK(cache.transforms() == 0);

  (void)cached(g, x, w, {}, cache);
  CHECK(cache.bytes() > 0);
  const WinogradWeightCache copy = cache;
  CHECK(copy.bytes() == 0);
  CHECK(copy.transforms() == 0);
  cache.release();
  CHECK(cache.bytes() == 0);
}
#endif

TEST_CASE("A Conv2d forward in inference mode gives the ordinary forward's bits") {
  Conv conv = random_conv(24, 20, 21);
  const TensorF x = random_input(pd::Shape{2, 24, 7, 7}, 22);
  const TensorF sample_bias = random_input(pd::Shape{2, 20}, 23), residual = random_input(pd::Shape{2, 20, 7, 7}, 24);
  const auto ordinary = conv.forward(x).to_host();
  const auto ordinary_adding = conv.forward_adding(x, sample_bias, residual).to_host();
  {
    const pd::InferenceMode inference;
    for (int call = 0; call < 3; ++call) {
      CHECK(same_bits(conv.forward(x).to_host(), ordinary));
      CHECK(same_bits(conv.forward_adding(x, sample_bias, residual).to_host(), ordinary_adding));
    }
  }
#if defined(PROGDIFF_TEST_WEIGHT_CACHE)
  // One transform for six forwards, whose weights did not change.
  if (winograd_runs(ConvGeometry{2, 24, 7, 7, 20, 3, 3, 1, 1})) {
    CHECK(transforms_of(conv) == 1);
    CHECK(conv.weight_cache().bytes() > 0);
  } else {
    MESSAGE("transform count not checked: this machine's Winograd crossover is above 20 channels at 7x7");
  }
#endif
  // A training forward frees the cache and runs as before.
  conv.forward(x);
  CHECK(conv.weight_cache().bytes() == 0);
}

TEST_CASE("Under bf16 products a Conv2d in inference mode runs the kernels it ran before" *
          doctest::skip(!pd::backend::cpu::bf16_unavailable_reason(pd::backend::cpu::identify_cpu()).empty())) {
  namespace cpu = pd::backend::cpu;
  const cpu::MatmulPrecisionScope bf16(cpu::MatmulPrecision::bf16);
  // 8x8: the bf16 direct kernel; 6x6: fp32 Winograd with the epilogue's terms added after it.
  for (const std::int64_t size : {8, 6}) {
    INFO("image ", size, "x", size);
    Conv conv = random_conv(48, 48, 51);
    const TensorF x = random_input(pd::Shape{2, 48, size, size}, 52);
    const TensorF sample_bias = random_input(pd::Shape{2, 48}, 53),
                  residual = random_input(pd::Shape{2, 48, size, size}, 54);
    const auto ordinary = conv.forward(x).to_host();
    const auto ordinary_adding = conv.forward_adding(x, sample_bias, residual).to_host();
    const pd::InferenceMode inference;
    CHECK(same_bits(conv.forward(x).to_host(), ordinary));
    CHECK(same_bits(conv.forward_adding(x, sample_bias, residual).to_host(), ordinary_adding));
    CHECK(transforms_of(conv) == 0);
  }
}

TEST_CASE("Every way of changing a Conv2d's weights reaches its next inference forward") {
  const TensorF x = random_input(pd::Shape{2, 24, 7, 7}, 31);
  // Runs `change` on a layer whose cache is built, then checks the next inference forward
  // against a fresh layer with the new weights, and that the change mattered (a cache never
  // invalidated would give `before`). With `inside` the change happens within the same
  // inference scope as the forwards around it.
  auto check_change = [&](const char* what, bool inside, auto change) {
    const std::string context = std::string(what) + (inside ? ", inside one inference scope" : ", between scopes");
    INFO(context);
    Conv conv = random_conv(24, 20, 32);
    std::vector<float> before, after;
    {
      const pd::InferenceMode inference;
      before = conv.forward(x).to_host();
      if (inside) {
        change(conv);
        after = conv.forward(x).to_host();
      }
    }
    if (!inside) {
      change(conv);
      const pd::InferenceMode inference;
      after = conv.forward(x).to_host();
    }
    CHECK(same_bits(after, reference_forward(conv, x)));
    CHECK_FALSE(same_bits(after, before));
#if defined(PROGDIFF_TEST_WEIGHT_CACHE)
    if (winograd_runs(ConvGeometry{2, 24, 7, 7, 20, 3, 3, 1, 1})) CHECK(transforms_of(conv) == 2);
#endif
  };

  for (const bool inside : {false, true}) {
    check_change("an AdamW step", inside, [](Conv& conv) {
      pd::optim::AdamW<float, Cpu> optimizer;
      conv.weight().grad.fill(0.5f);
      optimizer.step(conv, 1e-3);
    });
    check_change("a write through visit_parameters", inside, [](Conv& conv) {
      conv.visit_parameters(
          [](const std::string& name, pd::nn::Parameter<float, Cpu>& p) {
            if (name == "weight") p.value.data()[100] += 0.25f;
          },
          std::string());
    });
    check_change("a write through a tensor sharing the storage", inside, [](Conv& conv) {
      const TensorF alias = conv.weight().value.reshape(pd::Shape{conv.weight().value.numel()});
      alias.data()[7] = -alias.data()[7];
    });
    check_change("a new weight tensor", inside,
                 [](Conv& conv) { conv.weight().value = random_conv(24, 20, 33).weight().value.clone(); });
    check_change("an EMA copy", inside, [](Conv& conv) {
      pd::optim::Ema<float, Cpu> ema;
      Conv other = random_conv(24, 20, 34);
      ema.initialize(other);
      ema.copy_to(conv);
    });
    check_change("a checkpoint load", inside, [](Conv& conv) {
      const auto path = std::filesystem::temp_directory_path() / "progdiff_winograd_weight_cache_test.safetensors";
      const pd::io::ModelDescription description{{"structure", "conv"}};
      Conv other = random_conv(24, 20, 35);
      pd::io::save_checkpoint(path, other, description, pd::io::TrainingState{});
      pd::io::load_checkpoint(path, conv, description);
      std::filesystem::remove(path);
    });
  }
}

TEST_CASE("DDIM after an EMA copy samples with the new weights") {
  // 12x12 and 6x6 images of 16 and 32 channels: the U-Net's 3x3 convolutions run Winograd.
  using Net = pd::unet::UNet<pd::unet::Levels<1, 2>, pd::unet::ResBlocks<1>, pd::unet::AttentionAt<>,
                             pd::unet::ImageSize<12>, pd::unet::ImageChannels<1>, pd::unet::BaseChannels<16>,
                             pd::unet::GroupNormGroups<4>, pd::unet::DropoutPercent<0>>;
  using Model = pd::model::Progressive<Net>;
  const pd::schedule::Linear<100> schedule;
  const auto ddim = pd::sample::Ddim::from_schedule(schedule, 4, 0.0);
  const pd::Shape shape{2, 1, 12, 12};
  pd::Generator gen(41);
  Net net;
  net.initialize(gen);
  Model model(std::move(net), 100);
  Net other_net;
  other_net.initialize(gen);
  Model other(std::move(other_net), 100);

  const auto first = ddim.sample(model, shape, 7).to_host();
  CHECK(same_bits(ddim.sample(model, shape, 7).to_host(), first));  // the cache reused
  pd::optim::Ema<float, Cpu> ema;
  ema.initialize(other);
  ema.copy_to(model);
  const auto after = ddim.sample(model, shape, 7).to_host();
  CHECK(same_bits(after, ddim.sample(other, shape, 7).to_host()));
  CHECK_FALSE(same_bits(after, first));
}

}  // namespace progdiff_tests_winograd_weight_cache
#undef PROGDIFF_TEST_WEIGHT_CACHE

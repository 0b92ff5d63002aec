// Inference mode: a forward under InferenceMode keeps no activation (counted by the CPU back
// end's memory statistics: what is live afterwards is exactly the parameters, the inputs and the
// output), gives the same output as an ordinary forward, and a backward after it is an error.
// Predictions of the grouped models and sampler steps run in it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "memory_support.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/memory_stats.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/model/model.hpp"
#include "progdiff/sample/samplers.hpp"
#include "progdiff/schedule/schedule.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_inference_mode {

namespace {

namespace pd = progdiff;
namespace unet = progdiff::unet;
using Cpu = pd::backend::Cpu;
using TensorF = pd::Tensor<float, Cpu>;
using pd::backend::cpu::memory_stats;

using Net = pd::test::MemoryNet;
using Multi = pd::test::MemoryMulti;
using pd::test::bytes_of;
using pd::test::ramp;
std::size_t live() { return pd::test::live_bytes(); }

TensorF timesteps() { return TensorF::from_host(pd::Shape{3}, std::vector<float>{10, 500, 990}); }

// forward(x, t, route...) of `model` in evaluation mode, once ordinarily and once in inference
// mode: the outputs agree bit for bit; after the inference forward nothing beyond the inputs and
// the output is live, its peak stays below what the ordinary forward keeps, and backward throws.
template <class Model, class... Route>
void check_inference_forward(Model& model, Route... route) {
  model.set_training(false);
  const TensorF x = ramp(model.input_shape(3)), t = timesteps();
  const std::size_t before = live();
  const std::vector<float> ordinary = model.forward(x, t, route...).to_host();
  const std::size_t kept_by_ordinary = live() - before;
  CHECK(kept_by_ordinary > 0);
  model.backward(ramp(model.input_shape(3)));  // drops what the ordinary forward kept
  REQUIRE(live() == before);

  pd::backend::cpu::reset_peak_memory();
  std::vector<float> inferred;
  {
    const pd::InferenceMode inference;
    CHECK(pd::inference_mode());
    const TensorF y = model.forward(x, t, route...);
    CHECK(live() == before + bytes_of(y));
    inferred = y.to_host();
  }
  CHECK_FALSE(pd::inference_mode());
  CHECK(live() == before);
  // The peak holds a few activations at a time, not every layer's input.
  CHECK(memory_stats().peak_bytes - before < kept_by_ordinary / 2);
  CHECK(inferred == ordinary);
  CHECK_THROWS_WITH_AS(model.backward(ramp(model.input_shape(3))), doctest::Contains("inference mode"), pd::Error);
  model.set_training(true);
}

// A user's denoiser that records, at every call, whether it runs in inference mode.
struct RecordingDenoiser {
  std::vector<bool> seen;
  TensorF predict(const TensorF& x, std::span<const std::int64_t>) {
    seen.push_back(pd::inference_mode());
    return TensorF::from_host(x.shape(), std::vector<float>(static_cast<std::size_t>(x.size()), 0.0f));
  }
  pd::schedule::PredictionType prediction_type() const { return pd::schedule::PredictionType::Epsilon; }
};

template <class S>
void check_sampler_calls_in_inference_mode(const S& sampler, const char* what) {
  CAPTURE(what);
  RecordingDenoiser d;
  sampler.sample(d, pd::Shape{2, 3}, 1);
  CHECK(!d.seen.empty());
  CHECK(std::find(d.seen.begin(), d.seen.end(), false) == d.seen.end());
  CHECK_FALSE(pd::inference_mode());
}

}  // namespace

TEST_CASE("every sampler calls the denoiser in inference mode") {
  namespace smp = pd::sample;
  const pd::schedule::Linear<1000> schedule;
  const auto a = smp::alphas_cumprod(schedule);
  check_sampler_calls_in_inference_mode(smp::Ddpm::from_schedule(schedule, 10), "ddpm");
  check_sampler_calls_in_inference_mode(smp::Ddim::from_schedule(schedule, 10, 0.0), "ddim");
  check_sampler_calls_in_inference_mode(smp::DpmSolverMultistep::from_schedule(schedule, 10), "dpm++ 2m");
  check_sampler_calls_in_inference_mode(smp::DpmSolverSinglestep::from_schedule(schedule, 9, 3), "dpm++ 3s");
  check_sampler_calls_in_inference_mode(smp::Euler(smp::SigmaPlan::karras(a, 10)), "euler");
  check_sampler_calls_in_inference_mode(smp::Heun(smp::SigmaPlan::linspace(a, 6)), "heun");
}

TEST_CASE("InferenceMode nests and restores the previous state") {
  CHECK_FALSE(pd::inference_mode());
  {
    const pd::InferenceMode outer;
    CHECK(pd::inference_mode());
    {
      const pd::InferenceMode inner;
      CHECK(pd::inference_mode());
    }
    CHECK(pd::inference_mode());
  }
  CHECK_FALSE(pd::inference_mode());
}

TEST_CASE("a U-Net forward in inference mode keeps no activation and matches an ordinary forward") {
  Net net;
  pd::Generator gen(5);
  net.initialize(gen);
  check_inference_forward(net);
}

TEST_CASE("a multi-decoder U-Net forward in inference mode keeps no activation of any decoder") {
  pd::Generator gen(6);
  Multi multi = pd::test::initialized_multi(gen);
  const std::vector<std::int64_t> intervals{0, 1, 1};
  check_inference_forward(multi, std::span<const std::int64_t>(intervals));
}

TEST_CASE("predict of the grouped models runs in evaluation and inference mode and restores training") {
  pd::Generator gen(7);
  Net a, b;
  a.initialize(gen);
  b.initialize(gen);
  pd::model::Progressive<Net> progressive(pd::group::Partition{{0, 400, 1000}, {}}, {std::move(a), std::move(b)});
  Multi multi = pd::test::initialized_multi(gen);
  pd::model::IntervalRouted<Multi> routed(std::move(multi), {{0, 400, 1000}, {}});
  const std::vector<std::int64_t> t{10, 500, 990};
  const TensorF x = ramp(pd::Shape{3, 2, 16, 16});

  auto check_predict = [&](auto& model) {
    model.set_training(true);
    // Dropout (10%) is off in predict: the same input gives the same output twice.
    const std::size_t before = live();
    const TensorF y1 = model.predict(x, std::span<const std::int64_t>(t));
    CHECK(live() == before + bytes_of(y1));
    const TensorF y2 = model.predict(x, std::span<const std::int64_t>(t));
    CHECK(y1.to_host() == y2.to_host());
    CHECK(model.training());
    CHECK_FALSE(pd::inference_mode());
  };
  check_predict(progressive);
  check_predict(routed);
}

}  // namespace progdiff_tests_inference_mode

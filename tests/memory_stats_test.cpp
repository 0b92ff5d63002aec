#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "memory_support.hpp"
#include "progdiff/backend/block_cache.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/cpu/memory_stats.hpp"
#include "progdiff/nn/layer.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff_tests_memory_stats {

namespace {

namespace pd = progdiff;
namespace unet = progdiff::unet;
using Cpu = pd::backend::Cpu;
using TensorF = pd::Tensor<float, Cpu>;
using pd::backend::cpu::memory_stats;

struct MallocSource {
  static void* allocate(std::size_t bytes) { return std::malloc(bytes); }
  static void release(void* p) { std::free(p); }
};
using SmallCache = pd::backend::BlockCache<MallocSource, 64, 8192>;

using Net = pd::test::MemoryNet;
using Multi = pd::test::MemoryMulti;
using pd::test::bytes_of;
using pd::test::ramp;
std::size_t live() { return pd::test::live_bytes(); }

// Runs forward and backward of `model` (forward(x, t, route...)) and checks that after backward
// only the tensors this function holds are live beyond what persists between steps.
template <class Model, class... Route>
void check_step_frees_activations(Model& model, Route... route) {
  pd::optim::AdamW<float, Cpu> adamw;
  const pd::Shape in = model.input_shape(3);
  auto step = [&] {
    const TensorF x = ramp(in), t = TensorF::from_host(pd::Shape{3}, std::vector<float>{10, 500, 990});
    const TensorF y = model.forward(x, t, route...);
    const TensorF dy = ramp(y.shape());
    pd::nn::zero_grad(model);
    const TensorF dx = model.backward(dy);
    adamw.step(model, 1e-3);
    return std::vector<TensorF>{x, t, y, dy, dx};
  };
  step();  // AdamW's moments are created in the first step
  const std::size_t persistent = live();

  pd::backend::cpu::reset_peak_memory();
  const TensorF x = ramp(in), t = TensorF::from_host(pd::Shape{3}, std::vector<float>{10, 500, 990});
  const std::size_t inputs = bytes_of(x) + bytes_of(t);
  CHECK(live() == persistent + inputs);
  const TensorF y = model.forward(x, t, route...);
  const std::size_t after_forward = live();
  // Forward keeps activations for backward: far more than its output.
  CHECK(after_forward > persistent + inputs + 10 * bytes_of(y));
  const TensorF dy = ramp(y.shape());
  pd::nn::zero_grad(model);
  const TensorF dx = model.backward(dy);
  // Backward has dropped every cached activation: what is live is exactly what persists plus
  // the five tensors held here.
  CHECK(live() == persistent + inputs + bytes_of(y) + bytes_of(dy) + bytes_of(dx));
  CHECK(memory_stats().peak_bytes >= after_forward);
  adamw.step(model, 1e-3);
  CHECK(live() == persistent + inputs + bytes_of(y) + bytes_of(dy) + bytes_of(dx));
}

}  // namespace

TEST_CASE("the block cache counts live bytes by block size and keeps their peak") {
  SmallCache cache;
  CHECK(cache.stats().live_bytes == 0);
  void* a = cache.take(1000);  // a 1024-byte block
  void* b = cache.take(6000);  // 6144
  CHECK(cache.stats().live_bytes == 1024 + 6144);
  cache.give(b, 6000);
  auto s = cache.stats();
  CHECK(s.live_bytes == 1024);
  CHECK(s.peak_live_bytes == 1024 + 6144);
  CHECK(s.cached_bytes == 6144);
  cache.reset_peak();
  CHECK(cache.stats().peak_live_bytes == 1024);
  void* c = cache.take(5500);  // the cached 6144 block again: live again, no longer cached
  s = cache.stats();
  CHECK(s.live_bytes == 1024 + 6144);
  CHECK(s.peak_live_bytes == 1024 + 6144);
  CHECK(s.cached_bytes == 0);
  cache.give(a, 1000);
  cache.give(c, 5500);
  void* big = cache.take(9000);  // 10240: more than the cache keeps, released on give
  cache.give(big, 9000);
  s = cache.stats();
  CHECK(s.live_bytes == 0);
  CHECK(s.peak_live_bytes == 10240);  // the big block alone exceeds the earlier 1024 + 6144
  CHECK(s.cached_bytes == 1024 + 6144);
}

TEST_CASE("CPU tensors report their blocks to memory_stats") {
  const std::size_t before = live();
  {
    const TensorF a(pd::Shape{3, 1000});  // 12000 bytes: a 12288-byte block
    CHECK(live() == before + 12288);
    CHECK(pd::backend::cpu::block_bytes<float>(3000) == 12288);
    const TensorF b = a;  // a view shares the block
    CHECK(live() == before + 12288);
  }
  CHECK(live() == before);
}

TEST_CASE("a U-Net's backward frees the activations its forward kept") {
  Net net;
  pd::Generator gen(3);
  net.initialize(gen);
  check_step_frees_activations(net);
}

TEST_CASE("a multi-decoder U-Net's backward frees the activations and routing copies of every decoder") {
  pd::Generator gen(4);
  Multi multi = pd::test::initialized_multi(gen);
  const std::vector<std::int64_t> intervals{0, 1, 1};
  check_step_frees_activations(multi, std::span<const std::int64_t>(intervals));
}

}  // namespace progdiff_tests_memory_stats

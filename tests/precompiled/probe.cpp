// Uses every class the precompiled component instantiates, the way a program does. Compiled
// with PROGDIFF_PRECOMPILED=1, this object must define none of their member functions: the
// check (check_probe.cmake) reads its symbol table.
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/metrics/classifier.hpp"
#include "progdiff/metrics/frechet.hpp"
#include "progdiff/nn/attention_block.hpp"
#include "progdiff/nn/downsample.hpp"
#include "progdiff/nn/res_block.hpp"
#include "progdiff/nn/timestep_embedding.hpp"
#include "progdiff/nn/upsample.hpp"
#include "progdiff/optim/adamw.hpp"

namespace pd = progdiff;
using Cpu = pd::backend::Cpu;

double probe_precompiled() {
  pd::nn::TimestepEmbedding<float, Cpu> time({.dim = 16, .hidden = 32, .out = 32});
  pd::nn::ResBlock<float, Cpu> block({.in_channels = 8, .out_channels = 8, .temb_channels = 32, .groups = 4});
  pd::nn::AttentionBlock<float, Cpu> attention({.channels = 8, .heads = 1, .groups = 4});
  pd::nn::Downsample<float, Cpu> down({.in_channels = 8, .out_channels = 8});
  pd::nn::Upsample<float, Cpu> up({.in_channels = 8, .out_channels = 8});
  pd::Generator gen(1);
  time.initialize(gen);
  block.initialize(gen);
  attention.initialize(gen);
  down.initialize(gen);
  up.initialize(gen);
  const auto temb = time.forward(pd::Tensor<float, Cpu>::full({2}, 3.0f));
  const auto y =
      up.forward(down.forward(attention.forward(block.forward(pd::Tensor<float, Cpu>::zeros({2, 8, 8, 8}), temb))));
  pd::metrics::FashionClassifier<float, Cpu> classifier;
  pd::metrics::FeatureStatistics a(2), b(2);
  return static_cast<double>(y.size()) + static_cast<double>(classifier.parameter_count()) +
         pd::metrics::frechet_distance(a, b);
}

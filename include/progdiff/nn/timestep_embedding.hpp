#pragma once
#include <cmath>
#include <string>

#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/layer.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/silu.hpp"

namespace progdiff::nn {

struct TimestepEmbeddingConfig {
  std::int64_t dim = 128;     // channels of the sinusoidal embedding
  std::int64_t hidden = 512;  // width of the MLP's hidden layer
  std::int64_t out = 512;     // channels handed to the ResBlocks
  double max_period = 10000.0;
  double shift = 1.0;  // 1: DDPM (Ho et al. 2020); 0: diffusers' default
};

/// The time embedding of DDPM / DDPM++: the sinusoidal position embedding of Vaswani et al.
/// (2017) applied to timesteps, then an MLP, as DDPM's get_timestep_embedding followed by
/// Dense -> swish -> Dense (diffusers' get_timestep_embedding + TimestepEmbedding).
///
/// t: [N] (float, may be fractional) -> e: [N, dim] with half = dim / 2,
///   freq_i = exp(-ln(max_period) * i / (half - shift)), i < half,
///   e[n] = [sin(t_n freq_0) .. sin(t_n freq_{half-1}) | cos(t_n freq_0) .. cos(t_n freq_{half-1})]
///   (an odd dim leaves the last column zero);
/// -> linear_1 (weight [hidden, dim], bias [hidden]) -> SiLU -> linear_2 (weight [out, hidden],
///   bias [out]) -> y: [N, out].
/// backward(dy) accumulates the MLP's parameter gradients; timesteps get no gradient.
template <class T, class B>
class TimestepEmbedding {
 public:
  using value_type = T;
  using backend_type = B;

  TimestepEmbedding() = default;
  explicit TimestepEmbedding(TimestepEmbeddingConfig config) : config_(config) {
    require(config.dim > 0 && config.hidden > 0 && config.out > 0,
            "TimestepEmbedding: dim, hidden and out must be positive");
    require(static_cast<double>(config.dim / 2) - config.shift > 0.0,
            "TimestepEmbedding: half the embedding size (" + std::to_string(config.dim / 2) +
                ") must exceed the frequency shift " + std::to_string(config.shift));
    require(config.max_period > 0.0, "TimestepEmbedding: max_period must be positive");
    linear1_ = Linear<T, B>(LinearConfig{config.dim, config.hidden, true});
    linear2_ = Linear<T, B>(LinearConfig{config.hidden, config.out, true});
  }

  /// PyTorch's default for both Linear layers.
  void initialize(Generator& gen) {
    linear1_.initialize(gen);
    linear2_.initialize(gen);
  }

  const TimestepEmbeddingConfig& config() const { return config_; }
  Linear<T, B>& linear1() { return linear1_; }
  Linear<T, B>& linear2() { return linear2_; }

  Shape output_shape(const Shape& in) const {
    if (in.rank() != 1) throw ShapeError("TimestepEmbedding: got timesteps of shape " + in.str() + ", expected [N]");
    return Shape{in[0], config_.out};
  }

  /// The sinusoidal features alone: t [N] -> [N, dim].
  Tensor<T, B> sinusoidal(const Tensor<T, B>& t) const {
    output_shape(t.shape());
    Tensor<T, B> e(Shape{t.dim(0), config_.dim});
    B::timestep_embedding(t.dim(0), config_.dim, t.data(), e.data(), config_.max_period, config_.shift);
    return e;
  }

  Tensor<T, B> forward(const Tensor<T, B>& t) {
    return linear2_.forward(silu_.forward(linear1_.forward(sinusoidal(t))));
  }

  void backward(const Tensor<T, B>& dy) { linear1_.backward(silu_.backward(linear2_.backward(dy))); }

  /// The two Linear layers; the sinusoid is not a multiply-add.
  std::int64_t flops(const Shape& in) const {
    const std::int64_t n = output_shape(in)[0];
    return 2 * n * (config_.dim * config_.hidden + config_.hidden * config_.out);
  }
  std::int64_t parameter_count() const { return linear1_.parameter_count() + linear2_.parameter_count(); }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    linear1_.visit_parameters(f, scoped(prefix, "linear_1"));
    linear2_.visit_parameters(f, scoped(prefix, "linear_2"));
  }

 private:
  TimestepEmbeddingConfig config_;
  Linear<T, B> linear1_, linear2_;
  SiLU<T, B> silu_;
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class TimestepEmbedding<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

#pragma once
#include <cstdint>
#include <limits>
#include <string>

#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/layer.hpp"

namespace progdiff::nn {

struct DropoutConfig {
  double p = 0.1;          // probability of zeroing an element, in [0, 1)
  std::uint64_t seed = 0;  // Philox key of the masks
};

/// Inverted dropout, as torch.nn.Dropout: in training y = mask * x / (1 - p) with
/// mask ~ Bernoulli(1 - p) per element; in evaluation y = x. x, y: any shape.
///
/// The mask of call k is Philox (seed, stream = k): element i is kept when
/// philox_uniform(seed, k, i) > p. Every training forward (p > 0) takes the next stream, so masks
/// differ between calls, and a run restored with set_calls() reproduces them exactly.
/// (With p = 0 or in evaluation mode nothing is drawn and the stream does not advance.)
/// backward recomputes the same mask instead of storing it. When inactive (p = 0 or evaluation)
/// forward returns x itself and backward dy itself, sharing their storage as PyTorch's dropout
/// does in evaluation: no copy per call.
template <class T, class B>
class Dropout {
 public:
  using value_type = T;
  using backend_type = B;

  Dropout() : Dropout(DropoutConfig{}) {}
  explicit Dropout(DropoutConfig config) : config_(config) {
    require(config.p >= 0.0 && config.p < 1.0,
            "Dropout: the drop probability must lie in [0, 1), got " + std::to_string(config.p));
  }

  /// Draws the mask seed from `gen`, so layers initialized from one generator drop
  /// different elements.
  void initialize(Generator& gen) { config_.seed = gen.below(std::numeric_limits<std::uint64_t>::max()); }

  const DropoutConfig& config() const { return config_; }
  /// Replaces the mask seed (a checkpoint restores it with the call count).
  void set_seed(std::uint64_t seed) { config_.seed = seed; }
  bool training() const { return training_; }
  void set_training(bool training) { training_ = training; }
  /// Training forwards so far: the stream of the next mask. Checkpoints store it.
  std::uint64_t calls() const { return calls_; }
  void set_calls(std::uint64_t calls) { calls_ = calls; }

  Shape output_shape(const Shape& in) const { return in; }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    shape_ = x.shape();
    active_ = training_ && config_.p > 0.0;
    if (!active_) return x;
    stream_ = calls_++;
    Tensor<T, B> y(x.shape());
    B::dropout(x.size(), config_.p, config_.seed, stream_, x.data(), y.data());
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    expect_shape(dy.shape(), shape_, "Dropout::backward dy");
    if (!active_) return dy;
    Tensor<T, B> dx(dy.shape());
    B::dropout(dy.size(), config_.p, config_.seed, stream_, dy.data(), dx.data());
    return dx;
  }

  /// Not a multiply-add: counted as zero.
  std::int64_t flops(const Shape&) const { return 0; }
  std::int64_t parameter_count() const { return 0; }
  template <class F>
  void visit_parameters(F&&, const std::string&) {}
  /// The layer's random state for checkpoints: f(name, *this) (calls() / set_calls()).
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    f(prefix, *this);
  }

 private:
  DropoutConfig config_;
  bool training_ = true;
  bool active_ = false;
  std::uint64_t calls_ = 0;   // next stream
  std::uint64_t stream_ = 0;  // stream of the last forward's mask
  Shape shape_;
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class Dropout<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

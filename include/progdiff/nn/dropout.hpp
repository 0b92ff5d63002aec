#pragma once
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

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
/// The mask of call k is Philox (seed, stream = k), keyed by sample: element e of batch row j,
/// which is sample g(j) of the step's global batch, is kept when
/// philox_uniform(seed, k, g(j) * m + e) > p, m being the elements per row. By default
/// g(j) = j, so element i of x is kept when philox_uniform(seed, k, i) > p. A batch that is a
/// part of a larger one (a rank's rows in data-parallel training, a group's gathered rows)
/// names its samples with set_sample_offset() or set_sample_rows(), so a sample's mask does not
/// depend on how the batch was split. Every training forward (p > 0) takes the next stream, so
/// masks differ between calls, and a run restored with set_calls() reproduces them exactly.
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

  /// Row j of the following forwards is sample first + j of the global batch (0 by default).
  /// Not saved in checkpoints: whoever splits the batch sets it before each forward.
  void set_sample_offset(std::uint64_t first) {
    first_ = first;
    rows_.clear();
  }
  /// Row j of the following forwards is sample first + rows[j] (rows gathered from a batch that
  /// starts at global sample `first`).
  void set_sample_rows(std::uint64_t first, std::span<const std::int64_t> rows) {
    first_ = first;
    rows_.assign(rows.begin(), rows.end());
  }

  Shape output_shape(const Shape& in) const { return in; }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    shape_ = x.shape();
    active_ = training_ && config_.p > 0.0;
    if (!active_) return x;
    if (!rows_.empty() && static_cast<std::int64_t>(rows_.size()) != batch_rows(x.shape()))
      throw ShapeError("Dropout: " + std::to_string(rows_.size()) + " sample rows set for input shape " +
                       x.shape().str());
    stream_ = calls_++;
    mask_first_ = first_;  // backward recomputes this forward's mask, whatever is set meanwhile
    mask_rows_ = rows_;
    Tensor<T, B> y(x.shape());
    apply_mask(x.shape(), x.data(), y.data());
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    expect_shape(dy.shape(), shape_, "Dropout::backward dy");
    if (!active_) return dy;
    Tensor<T, B> dx(dy.shape());
    apply_mask(dy.shape(), dy.data(), dx.data());
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
  std::uint64_t first_ = 0;   // global index of row 0 (or the base of rows_)
  std::vector<std::int64_t> rows_;
  std::uint64_t mask_first_ = 0;  // the last forward's first_ and rows_
  std::vector<std::int64_t> mask_rows_;
  Shape shape_;

  static std::int64_t batch_rows(const Shape& s) { return s.rank() > 0 ? s[0] : 1; }

  // out = mask * in over the last forward's rows: one kernel per run of consecutive samples.
  void apply_mask(const Shape& s, const T* in, T* out) const {
    const std::int64_t n = batch_rows(s);
    if (n == 0) return;
    const auto per = static_cast<std::uint64_t>(s.numel() / n);
    if (mask_rows_.empty()) {
      B::dropout(static_cast<std::size_t>(s.numel()), config_.p, config_.seed, stream_, mask_first_ * per, in, out);
      return;
    }
    for (std::int64_t j = 0; j < n;) {
      std::int64_t end = j + 1;
      while (end < n && mask_rows_[static_cast<std::size_t>(end)] == mask_rows_[static_cast<std::size_t>(end - 1)] + 1)
        ++end;
      const auto sample = mask_first_ + static_cast<std::uint64_t>(mask_rows_[static_cast<std::size_t>(j)]);
      const auto at = static_cast<std::size_t>(j) * per;
      B::dropout(static_cast<std::size_t>(end - j) * per, config_.p, config_.seed, stream_, sample * per, in + at,
                 out + at);
      j = end;
    }
  }
};

namespace detail {
// The visitor shape of visit_random_state, to detect models that have dropout layers.
inline constexpr auto any_dropout = [](const std::string&, auto&) {};
}  // namespace detail

/// Row j of the following forwards of every dropout layer of `m` is global sample first + j:
/// m.set_sample_offset(first) when `m` routes samples itself (model::Progressive,
/// model::IntervalRouted), otherwise each layer's, visited with m.visit_random_state.
template <class M>
void set_sample_offset(M& m, std::uint64_t first) {
  if constexpr (requires { m.set_sample_offset(first); })
    m.set_sample_offset(first);
  else
    m.visit_random_state([&](const std::string&, auto& dropout) { dropout.set_sample_offset(first); }, std::string());
}
/// Row j of the following forwards of every dropout layer of `m` is global sample first + rows[j].
template <class M>
void set_sample_rows(M& m, std::uint64_t first, std::span<const std::int64_t> rows) {
  m.visit_random_state([&](const std::string&, auto& dropout) { dropout.set_sample_rows(first, rows); }, std::string());
}

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class Dropout<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

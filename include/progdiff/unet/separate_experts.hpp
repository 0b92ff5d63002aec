#pragma once
// SeparateExperts<Net, K>: one whole U-Net per timestep interval, no shared weights (the
// "separate architecture" baseline of the multi-stage paper, and the per-group denoisers of
// step-adaptive training, each pruned to its own widths). Routing as MultiDecoderUNet: the
// samples of interval k are gathered into a sub-batch and run through expert k.
// SeparateExperts<Net, kRunTimeCount> (unet/interval_count.hpp) takes K from the width tables
// the constructor is given instead of from the type.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/unet/channel_ops.hpp"
#include "progdiff/unet/interval_count.hpp"
#include "progdiff/unet/output_channels.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff::unet {

template <class Net, int K>
class SeparateExperts {
 public:
  static_assert(valid_interval_count(K),
                "progdiff::unet: SeparateExperts<Net, K> needs K >= 1 experts, or unet::kRunTimeCount for a count "
                "the constructor takes from the width tables it is given");
  using value_type = typename Net::value_type;
  using backend_type = typename Net::backend_type;
  using T = value_type;
  using B = backend_type;
  /// K, or kRunTimeCount: interval_count() is the count of either kind of model.
  static constexpr int expert_count = K;
  static constexpr bool count_at_run_time = K == kRunTimeCount;

  /// Expert k has the width table widths[k]; all share `config`. With kRunTimeCount, one expert
  /// per table.
  SeparateExperts(const std::vector<WidthTable>& widths, const UNetConfig& config) {
    if constexpr (count_at_run_time)
      require(!widths.empty(),
              "SeparateExperts<Net, kRunTimeCount>: got no width tables; the model needs at least "
              "one expert");
    else
      require(widths.size() == static_cast<std::size_t>(K), "SeparateExperts: got " + std::to_string(widths.size()) +
                                                                " width tables for " + std::to_string(K) + " experts");
    for (const auto& w : widths) experts_.emplace_back(w, config);
  }
  /// K experts of the type's default widths.
  explicit SeparateExperts(const UNetConfig& config = Net::default_config()) requires(!count_at_run_time)
      : SeparateExperts(std::vector<WidthTable>(K, Net::default_widths()), config) {}
  /// `count` experts of the type's default widths.
  explicit SeparateExperts(std::int64_t count,
                           const UNetConfig& config = Net::default_config()) requires count_at_run_time
      : SeparateExperts(default_tables(count), config) {}

  void initialize(Generator& gen) {
    for (auto& e : experts_) e.initialize(gen);
  }
  void set_training(bool training) {
    for (auto& e : experts_) e.set_training(training);
  }
  /// K: a constant of the type, or the constructor's count with kRunTimeCount.
  static constexpr std::int64_t interval_count() requires(!count_at_run_time) { return K; }
  std::int64_t interval_count() const requires count_at_run_time { return static_cast<std::int64_t>(experts_.size()); }
  Net& expert(std::int64_t k) { return experts_.at(static_cast<std::size_t>(k)); }
  std::vector<WidthTable> widths() const {
    std::vector<WidthTable> w;
    for (const auto& e : experts_) w.push_back(e.widths());
    return w;
  }

  /// x [N, C, S, S], t [N], interval [N] -> eps [N, C, S, S].
  Tensor<T, B> forward(const Tensor<T, B>& x, const Tensor<T, B>& t, std::span<const std::int64_t> interval) {
    if (x.rank() < 1 || static_cast<std::int64_t>(interval.size()) != x.dim(0))
      throw ShapeError("SeparateExperts: got " + std::to_string(interval.size()) +
                       " interval indices for input shape " + x.shape().str());
    const std::int64_t count = interval_count();
    std::vector<std::vector<std::int64_t>> rows(experts_.size());
    for (std::size_t i = 0; i < interval.size(); ++i) {
      if (interval[i] < 0 || interval[i] >= count)
        throw ConfigError("SeparateExperts: sample " + std::to_string(i) + " names interval " +
                          std::to_string(interval[i]) + ", outside [0, " + std::to_string(count) + ")");
      rows[static_cast<std::size_t>(interval[i])].push_back(static_cast<std::int64_t>(i));
    }
    Tensor<T, B> y(output_shape_of<Net>(x.shape()));
    input_shape_ = x.shape();
    for (std::size_t k = 0; k < experts_.size(); ++k) {
      const auto& r = rows[k];
      if (r.empty()) continue;
      scatter_rows(experts_[k].forward(gather_rows(x, r), gather_rows(t, r)), r, y);
    }
    rows_ = std::move(rows);
    return y;
  }

  /// dy -> dx; expert k accumulates gradients from its interval's samples only.
  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(!rows_.empty(), "SeparateExperts::backward called without a preceding forward");
    Tensor<T, B> dx(input_shape_);  // C channels, where dy has 2C for a learned variance
    for (std::size_t k = 0; k < experts_.size(); ++k) {
      const auto& r = rows_[k];
      if (r.empty()) continue;
      scatter_rows(experts_[k].backward(gather_rows(dy, r)), r, dx);
    }
    rows_.clear();
    return dx;
  }

  std::int64_t flops(const Shape& in, std::int64_t k) const {
    return experts_.at(static_cast<std::size_t>(k)).flops(in);
  }
  std::int64_t parameter_count() const {
    std::int64_t p = 0;
    for (const auto& e : experts_) p += e.parameter_count();
    return p;
  }
  std::int64_t parameter_count(std::int64_t k) const {
    return experts_.at(static_cast<std::size_t>(k)).parameter_count();
  }

  /// Names: expert.<k>.<UNet names>.
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    for (std::size_t k = 0; k < experts_.size(); ++k)
      experts_[k].visit_parameters(f, nn::scoped(prefix, "expert." + std::to_string(k)));
  }
  /// Every dropout layer, f(name, nn::Dropout&), named as the parameters.
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    for (std::size_t k = 0; k < experts_.size(); ++k)
      experts_[k].visit_random_state(f, nn::scoped(prefix, "expert." + std::to_string(k)));
  }

 private:
  static std::vector<WidthTable> default_tables(std::int64_t count) {
    require(count >= 1, "SeparateExperts<Net, kRunTimeCount>: got " + std::to_string(count) +
                            " experts; the model needs at least one");
    return std::vector<WidthTable>(static_cast<std::size_t>(count), Net::default_widths());
  }

  std::vector<Net> experts_;
  std::vector<std::vector<std::int64_t>> rows_;
  Shape input_shape_;
};

}  // namespace progdiff::unet

#pragma once
// SeparateExperts<Net, K>: one whole U-Net per timestep interval, no shared weights (the
// "separate architecture" baseline of the multi-stage paper, and the per-group denoisers of
// step-adaptive training, each pruned to its own widths). Routing as MultiDecoderUNet: the
// samples of interval k are gathered into a sub-batch and run through expert k.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/unet/channel_ops.hpp"
#include "progdiff/unet/output_channels.hpp"
#include "progdiff/unet/unet.hpp"

namespace progdiff::unet {

template <class Net, int K>
class SeparateExperts {
 public:
  static_assert(K >= 1, "progdiff::unet: SeparateExperts needs at least one expert");
  using value_type = typename Net::value_type;
  using backend_type = typename Net::backend_type;
  using T = value_type;
  using B = backend_type;
  static constexpr int expert_count = K;

  /// Expert k has the width table widths[k]; all share `config`.
  SeparateExperts(const std::vector<WidthTable>& widths, const UNetConfig& config) {
    require(widths.size() == static_cast<std::size_t>(K), "SeparateExperts: got " + std::to_string(widths.size()) +
                                                              " width tables for " + std::to_string(K) + " experts");
    for (const auto& w : widths) experts_.emplace_back(w, config);
  }
  /// K experts of the type's default widths.
  explicit SeparateExperts(const UNetConfig& config = Net::default_config())
      : SeparateExperts(std::vector<WidthTable>(K, Net::default_widths()), config) {}

  void initialize(Generator& gen) {
    for (auto& e : experts_) e.initialize(gen);
  }
  void set_training(bool training) {
    for (auto& e : experts_) e.set_training(training);
  }
  static constexpr std::int64_t interval_count() { return K; }
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
    std::vector<std::vector<std::int64_t>> rows(K);
    for (std::size_t i = 0; i < interval.size(); ++i) {
      if (interval[i] < 0 || interval[i] >= K)
        throw ConfigError("SeparateExperts: sample " + std::to_string(i) + " names interval " +
                          std::to_string(interval[i]) + ", outside [0, " + std::to_string(K) + ")");
      rows[static_cast<std::size_t>(interval[i])].push_back(static_cast<std::int64_t>(i));
    }
    Tensor<T, B> y(output_shape_of<Net>(x.shape()));
    input_shape_ = x.shape();
    for (int k = 0; k < K; ++k) {
      const auto& r = rows[static_cast<std::size_t>(k)];
      if (r.empty()) continue;
      scatter_rows(experts_[static_cast<std::size_t>(k)].forward(gather_rows(x, r), gather_rows(t, r)), r, y);
    }
    rows_ = std::move(rows);
    return y;
  }

  /// dy -> dx; expert k accumulates gradients from its interval's samples only.
  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(!rows_.empty(), "SeparateExperts::backward called without a preceding forward");
    Tensor<T, B> dx(input_shape_);  // C channels, where dy has 2C for a learned variance
    for (int k = 0; k < K; ++k) {
      const auto& r = rows_[static_cast<std::size_t>(k)];
      if (r.empty()) continue;
      scatter_rows(experts_[static_cast<std::size_t>(k)].backward(gather_rows(dy, r)), r, dx);
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
  std::vector<Net> experts_;
  std::vector<std::vector<std::int64_t>> rows_;
  Shape input_shape_;
};

}  // namespace progdiff::unet

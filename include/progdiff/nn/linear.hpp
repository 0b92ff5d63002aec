#pragma once
#include <cmath>
#include <string>

#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/nn/init.hpp"
#include "progdiff/nn/layer.hpp"

namespace progdiff::nn {

struct LinearConfig {
  std::int64_t in_features = 1;
  std::int64_t out_features = 1;
  bool bias = true;
};

/// y = x W^T + b, as torch.nn.Linear. x: [N, F_in] -> y: [N, F_out]; weight: [F_out, F_in].
/// backward returns dx and accumulates dweight and dbias.
template <class T, class B>
class Linear {
 public:
  using value_type = T;
  using backend_type = B;

  Linear() = default;
  explicit Linear(LinearConfig config) : config_(config) {
    require(config.in_features > 0 && config.out_features > 0, "Linear: feature counts must be positive");
    weight_ = Parameter<T, B>(Shape{config.out_features, config.in_features});
    if (config.bias) bias_ = Parameter<T, B>(Shape{config.out_features});
  }

  void initialize(Generator& gen) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(config_.in_features));
    init_uniform(weight_.value, bound, gen);
    if (config_.bias) init_uniform(bias_.value, bound, gen);
  }

  const LinearConfig& config() const { return config_; }
  Parameter<T, B>& weight() { return weight_; }
  Parameter<T, B>& bias() { return bias_; }

  Shape output_shape(const Shape& in) const {
    if (in.rank() != 2 || in[1] != config_.in_features)
      throw ShapeError("Linear: got input shape " + in.str() + ", expected [N, " + std::to_string(config_.in_features) +
                       "]");
    return Shape{in[0], config_.out_features};
  }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    const Shape out = output_shape(x.shape());
    Tensor<T, B> y(out);
    const std::int64_t n = out[0], fi = config_.in_features, fo = config_.out_features;
    B::template gemm<T>(Trans::No, Trans::Yes, n, fo, fi, T(1), x.data(), fi, weight_.value.data(), fi, T(0), y.data(),
                        fo);
    // [N, F] is [N, F, 1] in the channel layout: y[i, j] += bias[j].
    if (config_.bias) B::add_channel_bias(n, fo, std::int64_t{1}, bias_.value.data(), y.data());
    keep_for_backward(input_, x);
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(!input_.empty(), "Linear::backward called without a preceding forward outside inference mode");
    const std::int64_t n = input_.dim(0), fi = config_.in_features, fo = config_.out_features;
    expect_shape(dy.shape(), Shape{n, fo}, "Linear::backward dy");
    Tensor<T, B> dx(input_.shape());
    B::template gemm<T>(Trans::No, Trans::No, n, fi, fo, T(1), dy.data(), fo, weight_.value.data(), fi, T(0), dx.data(),
                        fi);
    B::template gemm<T>(Trans::Yes, Trans::No, fo, fi, n, T(1), dy.data(), fo, input_.data(), fi, T(1),
                        weight_.grad.data(), fi);
    // [N, F] is [N, F, 1] in the channel layout: dbias[j] += sum_i dy[i, j].
    if (config_.bias) B::channel_bias_grad(n, fo, std::int64_t{1}, dy.data(), bias_.grad.data());
    input_.reset();
    return dx;
  }

  std::int64_t flops(const Shape& in) const {
    return 2 * output_shape(in)[0] * config_.in_features * config_.out_features;
  }
  std::int64_t parameter_count() const { return weight_.numel() + (config_.bias ? bias_.numel() : 0); }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    f(scoped(prefix, "weight"), weight_);
    if (config_.bias) f(scoped(prefix, "bias"), bias_);
  }

 private:
  LinearConfig config_;
  Parameter<T, B> weight_, bias_;
  Tensor<T, B> input_;
};

}  // namespace progdiff::nn

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::nn {
extern template class Linear<float, backend::Cpu>;
}  // namespace progdiff::nn
#endif

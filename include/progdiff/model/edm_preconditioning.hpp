#pragma once
// EDM preconditioning (Karras et al. 2022, sec. 5 and Table 1): the denoiser is
//   D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))
// with F the network and
//   c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma sd / sqrt(sigma^2 + sd^2),
//   c_in = 1 / sqrt(sigma^2 + sd^2),   c_noise = ln(sigma) / 4,      sd = sigma_data (0.5).
// x = y + sigma n is on EDM's scale (no VP scaling) and D estimates y.
//
// model::EdmPreconditioned<M> wraps, by type, any network F with forward(x, t) / backward(dy)
// (a unet::UNet), or a grouped model with the IntervalModel form forward(x, t, groups)
// (model::Progressive, model::IntervalRouted over MultiDecoderUNet or SeparateExperts). A grouped
// inner model makes the wrapper a GroupedModel the trainers take (train/edm_objective.hpp), routing
// each sample by its sigma through schedule::EdmSigma's one boundary definition; its timesteps are
// that grid's timesteps, its output D (prediction type Sample), so the sigma samplers run it with
// sample::SigmaPlan::edm_preconditioned (sample/edm_heun.hpp).
//
// The network's noise input: EdmNoiseLabel::LogSigma is the paper's c_noise = ln(sigma) / 4;
// EdmNoiseLabel::GridTimestep gives it the grid timestep tau(sigma) in [0, T - 1], the range
// progdiff's timestep embedding is built for (a choice outside the paper, named as such in describe()).
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/group/edm_partition.hpp"
#include "progdiff/model/description.hpp"
#include "progdiff/model/grouped_model.hpp"
#include "progdiff/nn/dropout.hpp"
#include "progdiff/schedule/edm_sigma.hpp"
#include "progdiff/schedule/prediction_type.hpp"

namespace progdiff::model {

enum class EdmNoiseLabel { LogSigma, GridTimestep };

/// Table 1's coefficients at one sigma.
struct EdmCoefficients {
  double c_skip = 0.0, c_out = 0.0, c_in = 0.0, c_noise = 0.0;
};

struct EdmPreconditioning {
  double sigma_data = 0.5;
  EdmNoiseLabel noise_label = EdmNoiseLabel::LogSigma;

  EdmCoefficients at(double sigma, const schedule::EdmSigma& grid) const {
    require(sigma > 0 && std::isfinite(sigma),
            "EdmPreconditioning: sigma must be positive and finite, got " + std::to_string(sigma));
    require(sigma_data > 0, "EdmPreconditioning: sigma_data must be > 0, got " + std::to_string(sigma_data));
    const double d2 = sigma_data * sigma_data, s2 = sigma * sigma + d2, root = std::sqrt(s2);
    EdmCoefficients c;
    c.c_skip = d2 / s2;
    c.c_out = sigma * sigma_data / root;
    c.c_in = 1.0 / root;
    c.c_noise = noise_label == EdmNoiseLabel::LogSigma ? 0.25 * std::log(sigma) : grid.timestep_of(sigma);
    return c;
  }
};

namespace detail {
// out_i = a_i x_i + b_i y_i per sample (y may be null), through the back end's weighted sum.
template <class T, class B>
Tensor<T, B> edm_rows(const Tensor<T, B>& x, std::span<const double> a, const Tensor<T, B>* y,
                      std::span<const double> b) {
  const std::int64_t n = x.dim(0);
  const auto terms = static_cast<std::size_t>(B::sampler_terms);
  std::vector<double> w(static_cast<std::size_t>(n) * terms, 0.0);
  for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
    w[i * terms] = a[i];
    if (y) w[i * terms + 1] = b[i];
  }
  const auto weights = Tensor<double, B>::from_host(Shape{n, B::sampler_terms}, w);
  std::array<const T*, B::sampler_terms> operands{};
  operands[0] = x.data();
  if (y) operands[1] = y->data();
  Tensor<T, B> out(x.shape());
  B::template weighted_sum<T>(n, x.numel() / n, weights.data(), operands, out.data());
  return out;
}

template <class M, class T, class B>
concept RoutedInner = requires(M& m, const Tensor<T, B>& x, std::span<const std::int64_t> g) {
  { m.forward(x, x, g) } -> std::same_as<Tensor<T, B>>;
  m.partition();
};
template <class M, class T, class B>
concept PlainInner = requires(M& m, const Tensor<T, B>& x) {
  { m.forward(x, x) } -> std::same_as<Tensor<T, B>>;
};
}  // namespace detail

template <class M>
class EdmPreconditioned {
 public:
  using inner_type = M;
  using value_type = typename M::value_type;
  using backend_type = typename M::backend_type;
  using T = value_type;
  using B = backend_type;
  static constexpr bool routed = detail::RoutedInner<M, T, B>;
  static_assert(routed || detail::PlainInner<M, T, B>,
                "progdiff::model::EdmPreconditioned: the wrapped model needs forward(x, t) and backward(dy) (a "
                "network such as unet::UNet) or the IntervalModel form forward(x, t, groups) with partition() "
                "(model::Progressive, model::IntervalRouted)");
  static constexpr bool shares_parameters = [] {
    if constexpr (requires { M::shares_parameters; })
      return static_cast<bool>(M::shares_parameters);
    else
      return false;
  }();

  EdmPreconditioned(M model, schedule::EdmSigma grid, EdmPreconditioning preconditioning = {})
      : model_(std::move(model)), grid_(grid), pre_(preconditioning) {
    require(pre_.sigma_data > 0, "EdmPreconditioned: sigma_data must be > 0");
    if constexpr (routed)
      require(model_.partition().size() == grid_.size(),
              "EdmPreconditioned: the model's partition covers " + std::to_string(model_.partition().size()) +
                  " timesteps, the EDM grid has " + std::to_string(grid_.size()));
  }

  M& inner() { return model_; }
  const M& inner() const { return model_; }
  const schedule::EdmSigma& grid() const { return grid_; }
  const EdmPreconditioning& preconditioning() const { return pre_; }
  EdmCoefficients coefficients(double sigma) const { return pre_.at(sigma, grid_); }

  void initialize(Generator& gen) { model_.initialize(gen); }
  void set_training(bool training) {
    training_ = training;
    model_.set_training(training);
  }
  bool training() const { return training_; }
  /// Row j of the following training forwards is sample first + j of the step's global batch
  /// (nn::set_sample_offset): the inner model keys its dropout masks by global sample index.
  void set_sample_offset(std::uint64_t first) requires(
      requires(M& m) { m.set_sample_offset(std::uint64_t{}); } ||
      requires(M & m) { m.visit_random_state(nn::detail::any_dropout, std::string()); }) {
    nn::set_sample_offset(model_, first);
  }
  /// The wrapper outputs D, an estimate of the clean image.
  schedule::PredictionType prediction_type() const { return schedule::PredictionType::Sample; }

  /// D(x; sigma_i) for each sample, keeping what backward needs (training form).
  Tensor<T, B> forward_sigma(const Tensor<T, B>& x, std::span<const double> sigmas) {
    require<ShapeError>(
        x.rank() >= 1 && x.dim(0) == static_cast<std::int64_t>(sigmas.size()),
        "EdmPreconditioned: " + std::to_string(sigmas.size()) + " sigmas for a batch of shape " + x.shape().str());
    const std::size_t n = sigmas.size();
    c_skip_.assign(n, 0.0);
    c_out_.assign(n, 0.0);
    c_in_.assign(n, 0.0);
    std::vector<T> noise(n);
    for (std::size_t i = 0; i < n; ++i) {
      const EdmCoefficients c = pre_.at(sigmas[i], grid_);
      c_skip_[i] = c.c_skip, c_out_[i] = c.c_out, c_in_[i] = c.c_in;
      noise[i] = static_cast<T>(c.c_noise);
    }
    const Tensor<T, B> input = detail::edm_rows<T, B>(x, c_in_, nullptr, {});
    const auto t = Tensor<T, B>::from_host(Shape{static_cast<std::int64_t>(n)}, noise);
    Tensor<T, B> f;
    if constexpr (routed) {
      std::vector<std::int64_t> groups;
      for (double s : sigmas) groups.push_back(group::group_of_sigma(grid_, model_.partition(), s));
      f = model_.forward(input, t, groups);
    } else {
      f = model_.forward(input, t);
    }
    expect_shape(f.shape(), x.shape(), "EdmPreconditioned: the network's output");
    return detail::edm_rows<T, B>(x, c_skip_, &f, c_out_);
  }
  /// The same at grid timesteps (integer or fractional): sigma = grid().sigma_at(t).
  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const std::int64_t> timesteps) {
    return forward_sigma(x, sigmas_of(timesteps));
  }
  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const double> timesteps) {
    return forward_sigma(x, sigmas_of(timesteps));
  }
  /// dD -> dx: dx = c_skip dD + c_in F'^T (c_out dD); the network accumulates its gradients.
  Tensor<T, B> backward(const Tensor<T, B>& dd) {
    require(!c_out_.empty(), "EdmPreconditioned::backward called without a preceding forward");
    const Tensor<T, B> df = detail::edm_rows<T, B>(dd, c_out_, nullptr, {});
    const Tensor<T, B> dinput = model_.backward(df);
    Tensor<T, B> dx = detail::edm_rows<T, B>(dd, c_skip_, &dinput, c_in_);
    c_out_.clear();
    return dx;
  }

  /// D(x; sigma) in evaluation and inference mode.
  Tensor<T, B> denoise(const Tensor<T, B>& x, std::span<const double> sigmas) {
    const bool was = training_;
    set_training(false);
    Tensor<T, B> d;
    {
      const InferenceMode inference;
      d = forward_sigma(x, sigmas);
    }
    c_out_.clear();
    set_training(was);
    return d;
  }
  /// sample::Denoiser / ContinuousDenoiser over the grid's timesteps: D.
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const std::int64_t> timesteps) {
    return denoise(x, sigmas_of(timesteps));
  }
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const double> timesteps) {
    return denoise(x, sigmas_of(timesteps));
  }

  // GroupedModel: partition, costs, parameters and description of the inner model.
  const group::Partition& partition() const requires routed { return model_.partition(); }
  std::int64_t group_count() const requires routed { return model_.group_count(); }
  std::int64_t flops(const Shape& image, std::int64_t k) const requires routed { return model_.flops(image, k); }
  double average_flops(const Shape& image) const requires routed { return model_.average_flops(image); }
  std::int64_t parameter_count() const { return model_.parameter_count(); }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    model_.visit_parameters(f, prefix);
  }
  template <class F>
  void visit_group_parameters(std::int64_t k, F&& f, const std::string& prefix) requires routed {
    model_.visit_group_parameters(k, f, prefix);
  }
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) requires requires(M& m) {
    m.visit_random_state(f, prefix);
  }
  { model_.visit_random_state(f, prefix); }

  /// The inner model's description with the preconditioning and the sigma grid (edm.*).
  Description describe() const requires routed {
    Description d = model_.describe();
    d["model.prediction"] = "edm_denoiser";
    d["edm.sigma_data"] = exact(pre_.sigma_data);
    d["edm.noise_label"] = pre_.noise_label == EdmNoiseLabel::LogSigma ? "log_sigma_over_4" : "grid_timestep";
    d["edm.timesteps"] = std::to_string(grid_.size());
    d["edm.sigma_min"] = exact(grid_.sigma_min());
    d["edm.sigma_max"] = exact(grid_.sigma_max());
    d["edm.rho"] = exact(grid_.rho());
    return d;
  }

 private:
  // Integer timesteps lie on the grid; fractional ones may leave it (a churned sigma above
  // sigma_max), as long as the noise level stays positive.
  std::vector<double> sigmas_of(std::span<const std::int64_t> timesteps) const {
    std::vector<double> s;
    for (std::int64_t t : timesteps) {
      require(t >= 0 && t <= grid_.size() - 1, "EdmPreconditioned: timestep " + std::to_string(t) +
                                                   " outside the EDM grid's [0, " + std::to_string(grid_.size() - 1) +
                                                   "]");
      s.push_back(grid_.sigma_at(static_cast<double>(t)));
    }
    return s;
  }
  std::vector<double> sigmas_of(std::span<const double> timesteps) const {
    std::vector<double> s;
    for (double t : timesteps) {
      const double sigma = std::isfinite(t) ? grid_.sigma_at(t) : 0.0;
      require(sigma > 0 && std::isfinite(sigma),
              "EdmPreconditioned: timestep " + std::to_string(t) + " gives no positive noise level on the EDM grid");
      s.push_back(sigma);
    }
    return s;
  }

  M model_;
  schedule::EdmSigma grid_;
  EdmPreconditioning pre_;
  bool training_ = true;
  std::vector<double> c_skip_, c_out_, c_in_;
};

}  // namespace progdiff::model

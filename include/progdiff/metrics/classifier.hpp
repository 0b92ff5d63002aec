#pragma once
// FashionClassifier: a small convolutional image classifier whose penultimate activations serve as
// the feature space of the Frechet distance (fashion_frechet.hpp), the role Inception-v3's pool3
// features play in FID (Heusel et al. 2017) for natural images.
//
//   x [N, 1, 32, 32] -> per stage s: Conv2d 3x3 (stride_s) -> GroupNorm -> SiLU
//                    -> GlobalAveragePool -> features [N, C_last] -> Linear -> logits [N, classes]
//
// The default stages (32 @ stride 2, 64 @ 2, 128 @ 1, 128 @ 2: 32x32 -> 16 -> 8 -> 8 -> 4) make a
// 242k-parameter network of 16.7 MFLOP per image; docs/metrics.md records its accuracy and training
// time on Fashion-MNIST. A first stage at stride 1 would cost little arithmetic but three
// memory-bound full-resolution passes (GroupNorm, SiLU, their backward), doubling the step time. Like every layer,
// forward keeps what backward needs and backward returns dx while accumulating parameter gradients.
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/metrics/global_average_pool.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/silu.hpp"

namespace progdiff::metrics {

/// One convolution stage: output channels and stride (2 halves the resolution).
struct ClassifierStage {
  std::int64_t channels = 32;
  std::int64_t stride = 1;
};

struct ClassifierConfig {
  std::int64_t in_channels = 1;
  std::vector<ClassifierStage> stages = {{32, 2}, {64, 2}, {128, 1}, {128, 2}};
  std::int64_t groups = 8;  // GroupNorm groups of every stage; must divide each stage's channels
  std::int64_t classes = 10;

  /// The checkpoint description: the structure, compared key by key when a checkpoint is loaded.
  io::ModelDescription description() const {
    std::string widths, strides;
    for (const auto& s : stages) {
      if (!widths.empty()) widths += ',', strides += ',';
      widths += std::to_string(s.channels);
      strides += std::to_string(s.stride);
    }
    return {{"model", "fashion_classifier"},
            {"in_channels", std::to_string(in_channels)},
            {"widths", widths},
            {"strides", strides},
            {"groups", std::to_string(groups)},
            {"classes", std::to_string(classes)}};
  }
};

template <class T, class B>
class FashionClassifier {
 public:
  using value_type = T;
  using backend_type = B;

  explicit FashionClassifier(ClassifierConfig config = {}) : config_(std::move(config)) {
    require(config_.in_channels > 0 && config_.classes > 1 && !config_.stages.empty(),
            "FashionClassifier: needs positive input channels, at least 2 classes and at least one stage");
    std::int64_t in = config_.in_channels;
    for (std::size_t s = 0; s < config_.stages.size(); ++s) {
      const ClassifierStage& st = config_.stages[s];
      require(st.channels > 0 && (st.stride == 1 || st.stride == 2),
              "FashionClassifier: stage " + std::to_string(s) + " needs positive channels and stride 1 or 2");
      require(st.channels % config_.groups == 0, "FashionClassifier: stage " + std::to_string(s) + " has " +
                                                     std::to_string(st.channels) + " channels, not divisible by " +
                                                     std::to_string(config_.groups) + " groups");
      convs_.emplace_back(nn::Conv2dConfig{in, st.channels, 3, st.stride, 1, true});
      norms_.emplace_back(nn::GroupNormConfig{config_.groups, st.channels, 1e-5});
      acts_.emplace_back();
      in = st.channels;
    }
    head_ = nn::Linear<T, B>(nn::LinearConfig{in, config_.classes, true});
  }

  /// PyTorch's default initialization of every layer, drawn from `gen`.
  void initialize(Generator& gen) {
    for (std::size_t s = 0; s < convs_.size(); ++s) {
      convs_[s].initialize(gen);
      norms_[s].initialize(gen);
    }
    head_.initialize(gen);
  }

  const ClassifierConfig& config() const { return config_; }
  std::int64_t feature_dim() const { return config_.stages.back().channels; }
  std::int64_t classes() const { return config_.classes; }

  /// The penultimate activations (after global average pooling): x [N, C, H, W] -> [N, feature_dim()].
  Tensor<T, B> features(const Tensor<T, B>& x) {
    expect_nchw(x.shape(), "FashionClassifier");
    Tensor<T, B> h = x;
    for (std::size_t s = 0; s < convs_.size(); ++s) h = acts_[s].forward(norms_[s].forward(convs_[s].forward(h)));
    return pool_.forward(h);
  }

  /// Class logits [N, classes].
  Tensor<T, B> forward(const Tensor<T, B>& x) { return head_.forward(features(x)); }

  /// dlogits [N, classes] -> dx; accumulates every parameter gradient.
  Tensor<T, B> backward(const Tensor<T, B>& dlogits) {
    Tensor<T, B> d = pool_.backward(head_.backward(dlogits));
    for (std::size_t s = convs_.size(); s-- > 0;) d = convs_[s].backward(norms_[s].backward(acts_[s].backward(d)));
    return d;
  }

  Shape output_shape(const Shape& in) const {
    Shape h = in;
    for (const auto& c : convs_) h = c.output_shape(h);
    return head_.output_shape(pool_.output_shape(h));
  }
  std::int64_t flops(const Shape& in) const {
    std::int64_t total = 0;
    Shape h = in;
    for (const auto& c : convs_) {
      total += c.flops(h);
      h = c.output_shape(h);
    }
    return total + head_.flops(pool_.output_shape(h));
  }
  std::int64_t parameter_count() const {
    std::int64_t n = head_.parameter_count();
    for (std::size_t s = 0; s < convs_.size(); ++s) n += convs_[s].parameter_count() + norms_[s].parameter_count();
    return n;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    for (std::size_t s = 0; s < convs_.size(); ++s) {
      convs_[s].visit_parameters(f, nn::scoped(prefix, "stages." + std::to_string(s) + ".conv"));
      norms_[s].visit_parameters(f, nn::scoped(prefix, "stages." + std::to_string(s) + ".norm"));
    }
    head_.visit_parameters(f, nn::scoped(prefix, "head"));
  }

 private:
  ClassifierConfig config_;
  std::vector<nn::Conv2d<T, B>> convs_;
  std::vector<nn::GroupNorm<T, B>> norms_;
  std::vector<nn::SiLU<T, B>> acts_;
  GlobalAveragePool<T, B> pool_;
  nn::Linear<T, B> head_;
};

}  // namespace progdiff::metrics

#if PROGDIFF_PRECOMPILED
#include "progdiff/backend/cpu/cpu.hpp"
namespace progdiff::metrics {
extern template class FashionClassifier<float, backend::Cpu>;
}  // namespace progdiff::metrics
#endif

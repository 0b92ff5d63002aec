#pragma once
// model::IntervalRouted<M>: a unet::IntervalModel (MultiDecoderUNet: shared encoder, one decoder
// per interval; SeparateExperts: one whole U-Net per interval) together with the partition that
// maps timesteps to its intervals, as a GroupedModel the trainers and samplers take.
//
//   IntervalRouted<Multi> m(std::move(net), partition);     // partition.groups() == K
//   m.forward(x, timesteps) / m.backward(dy) / m.predict(x, timesteps)
//   m.visit_group_parameters(k, ...)   decoder k (or expert k): what only group k uses
//   m.describe()                       structure, encoder and per-decoder widths, boundaries
//
// Parameter names are the inner model's (encoder.*, decoder.<k>.*; or expert.<k>.*).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/model/description.hpp"
#include "progdiff/model/evaluation_scope.hpp"
#include "progdiff/model/grouped_model.hpp"
#include "progdiff/nn/dropout.hpp"
#include "progdiff/unet/interval_model.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/separate_experts.hpp"

namespace progdiff::model {

template <unet::IntervalModel M>
class IntervalRouted {
 public:
  using inner_type = M;
  using value_type = typename M::value_type;
  using backend_type = typename M::backend_type;
  using T = value_type;
  using B = backend_type;
  /// A shared encoder is trained by every group; separate experts share nothing.
  static constexpr bool shares_parameters = requires(M & m) { m.encoder(); };

  IntervalRouted(M model, group::Partition partition,
                 schedule::PredictionType prediction = schedule::PredictionType::Epsilon)
      : model_(std::move(model)), partition_(std::move(partition)), prediction_(prediction) {
    partition_.validate(partition_.size());
    require(partition_.groups() == model_.interval_count(),
            "IntervalRouted: the partition has " + std::to_string(partition_.groups()) + " groups, the model " +
                std::to_string(model_.interval_count()) + " intervals");
  }

  M& inner() { return model_; }
  const M& inner() const { return model_; }
  void initialize(Generator& gen) { model_.initialize(gen); }
  void set_training(bool training) {
    training_ = training;
    model_.set_training(training);
  }
  bool training() const { return training_; }
  /// Row j of the following training forwards is sample first + j of the step's global batch:
  /// the shared encoder keys its dropout masks by those indices, decoder (or expert) k by the
  /// global indices of the rows it is given.
  void set_sample_offset(std::uint64_t first) { sample_offset_ = first; }
  const group::Partition& partition() const { return partition_; }
  std::int64_t group_count() const { return partition_.groups(); }
  schedule::PredictionType prediction_type() const { return prediction_; }

  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const std::int64_t> timesteps) {
    std::vector<std::int64_t> groups;
    for (std::int64_t t : timesteps) groups.push_back(partition_.group_of(t));
    return forward(x, timestep_tensor<T, B>(timesteps), groups);
  }
  Tensor<T, B> forward(const Tensor<T, B>& x, const Tensor<T, B>& t, std::span<const std::int64_t> groups) {
    if (training_) key_dropout(groups);
    return model_.forward(x, t, groups);
  }
  Tensor<T, B> backward(const Tensor<T, B>& dy) { return model_.backward(dy); }

  /// sample::Denoiser: evaluation and inference mode for the call (EvaluationScope).
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const std::int64_t> timesteps) {
    EvaluationScope scope(*this);
    return forward(x, timesteps);
  }
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const double> timesteps) {
    const std::vector<std::int64_t> groups = partition_.groups_of_nearest(timesteps);
    const std::vector<T> tv(timesteps.begin(), timesteps.end());
    EvaluationScope scope(*this);
    return model_.forward(x, Tensor<T, B>::from_host(Shape{static_cast<std::int64_t>(tv.size())}, tv), groups);
  }

  std::int64_t flops(const Shape& image, std::int64_t k) const { return model_.flops(image, k); }
  double average_flops(const Shape& image) const {
    return unet::average_flops(unet::flops_per_interval(model_, image), unet::interval_fractions(partition_));
  }
  std::int64_t parameter_count() const { return model_.parameter_count(); }
  std::int64_t parameter_count(std::int64_t k) const { return model_.parameter_count(k); }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    model_.visit_parameters(f, prefix);
  }
  /// Every dropout layer, f(name, nn::Dropout&), under the inner model's names.
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    model_.visit_random_state(f, prefix);
  }
  /// Decoder k of a shared-encoder model, expert k of separate experts.
  template <class F>
  void visit_group_parameters(std::int64_t k, F&& f, const std::string& prefix) {
    if constexpr (requires { model_.decoder(k); })
      model_.decoder(k).visit_parameters(f, nn::scoped(prefix, "decoder." + std::to_string(k)));
    else
      model_.expert(k).visit_parameters(f, nn::scoped(prefix, "expert." + std::to_string(k)));
  }

  /// kind, structure, boundaries, prediction; a shared-encoder model adds config.*,
  /// encoder.width.*, decoder<k>.width.* and decoder<k>.groupnorm_groups; experts add
  /// expert<k>.config.* and expert<k>.width.*.
  Description describe() const {
    Description d;
    d["model.groups"] = std::to_string(group_count());
    d["model.boundaries"] = starts_label(partition_);
    d["model.prediction"] = prediction_label(prediction_);
    if constexpr (requires { model_.decoder_flops(Shape{}, 0); }) {
      d["model.kind"] = "multi_decoder";
      d["model.structure"] = unet_structure<typename M::spec>();
      describe_config(d, "", model_.config());
      const unet::MultiDecoderWidths w = model_.widths();
      describe_widths(d, "encoder.", w.encoder);
      for (std::size_t k = 0; k < w.decoders.size(); ++k) {
        describe_widths(d, "decoder" + std::to_string(k) + ".", w.decoders[k]);
        d["decoder" + std::to_string(k) + ".groupnorm_groups"] = std::to_string(w.decoder_groups[k]);
      }
    } else {
      d["model.kind"] = "separate_experts";
      const auto w = model_.widths();
      for (std::size_t k = 0; k < w.size(); ++k) {
        // SeparateExperts hands out its experts only mutably; describing reads them
        auto& e = const_cast<M&>(model_).expert(static_cast<std::int64_t>(k));
        if (k == 0) d["model.structure"] = unet_structure<typename std::remove_cvref_t<decltype(e)>::spec>();
        describe_config(d, "expert" + std::to_string(k) + ".", e.config());
        describe_widths(d, "expert" + std::to_string(k) + ".", w[k]);
      }
    }
    return d;
  }

 private:
  // Whether the inner model's parts are known: decoder (expert) k runs on the samples of group k,
  // gathered in batch order, a shared encoder on the whole batch. Another IntervalModel's
  // dropout layers are all keyed as if they saw the whole batch.
  static constexpr bool routes_known =
      (requires(M & m) { m.decoder(std::int64_t{}); }) || (requires(M & m) { m.expert(std::int64_t{}); });

  // Keys each part's dropout masks by the global indices of the samples it is given.
  void key_dropout(std::span<const std::int64_t> groups) {
    if constexpr (requires { model_.visit_random_state(nn::detail::any_dropout, std::string()); }) {
      std::vector<std::vector<std::int64_t>> rows(static_cast<std::size_t>(group_count()));
      for (std::size_t i = 0; i < groups.size(); ++i)
        if (groups[i] >= 0 && groups[i] < group_count())  // the inner model reports a bad group
          rows[static_cast<std::size_t>(groups[i])].push_back(static_cast<std::int64_t>(i));
      auto key = [&](auto& part, const std::vector<std::int64_t>& r) {
        if (r.size() == groups.size())
          nn::set_sample_offset(part, sample_offset_);
        else if (!r.empty())
          nn::set_sample_rows(part, sample_offset_, r);
      };
      if constexpr (requires { model_.encoder(); }) nn::set_sample_offset(model_.encoder(), sample_offset_);
      for (std::int64_t k = 0; k < group_count(); ++k) {
        if constexpr (requires { model_.decoder(k); })
          key(model_.decoder(k), rows[static_cast<std::size_t>(k)]);
        else if constexpr (requires { model_.expert(k); })
          key(model_.expert(k), rows[static_cast<std::size_t>(k)]);
      }
      if constexpr (!routes_known) nn::set_sample_offset(model_, sample_offset_);
    }
  }

  M model_;
  group::Partition partition_;
  schedule::PredictionType prediction_;
  bool training_ = true;
  std::uint64_t sample_offset_ = 0;  // global index of this batch's row 0
};

}  // namespace progdiff::model

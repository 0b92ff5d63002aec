#pragma once
// model::Progressive<Net>: a progressive (timestep-grouped) diffusion model, as the Step-Adaptive
// / TDC papers train it: a group::Partition of the training timesteps and one denoiser of type
// Net per group. All denoisers share Net's type-level structure (a unet::UNet<...>) but each has
// its own width table, so a group pruned to its FLOPs budget is a smaller dense net.
//
//   Progressive<Net> m(partition, {net0, net1, ...});   // one net per group
//   Progressive<Net> base(Net(...), timesteps);          // the unified model: one group
//   auto groups = Progressive<Net>::copies_of(base.denoiser(0), partition, gen);  // stage 2 start
//
//   m.predict(x, timesteps)            sample::Denoiser: every sampler in sample/ drives it
//   m.forward(x, timesteps)            training forward, each sample routed by its timestep
//   m.forward(x, t, groups)            IntervalModel form: t a [N] tensor, a group per sample
//   m.backward(dy)                     group k's parameters get gradient from its samples only
//   m.visit_parameters(f, prefix)      names "group<k>.<Net names>"
//   m.flops(image, k), m.average_flops(image)   per group, and averaged over timesteps as the
//                                      papers report: sum_k (|group k| / T) flops_k
//   m.describe()                       a checkpoint description: structure, each group's widths,
//                                      the boundaries and the prediction type
//
// Copies of a Progressive share weight storage (as Tensor copies do); copies_of() clones.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/random.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/model/description.hpp"
#include "progdiff/model/evaluation_scope.hpp"
#include "progdiff/model/grouped_model.hpp"
#include "progdiff/nn/dropout.hpp"
#include "progdiff/unet/channel_ops.hpp"
#include "progdiff/unet/interval_model.hpp"
#include "progdiff/unet/output_channels.hpp"

namespace progdiff::model {

/// A new net with `source`'s widths, configuration and weights (deep copies). Its dropout
/// seeds come from `gen`, so copies made from one generator drop different elements.
template <class Net>
Net clone_net(Net& source, Generator& gen) {
  Net copy(source.widths(), source.config());
  copy.initialize(gen);
  std::map<std::string, nn::Parameter<typename Net::value_type, typename Net::backend_type>*> into;
  copy.visit_parameters([&](const std::string& name, auto& p) { into[name] = &p; }, std::string());
  source.visit_parameters([&](const std::string& name, auto& p) { into.at(name)->value.copy_from(p.value); },
                          std::string());
  return copy;
}

template <class Net>
class Progressive {
 public:
  using net_type = Net;
  using value_type = typename Net::value_type;
  using backend_type = typename Net::backend_type;
  using T = value_type;
  using B = backend_type;
  static constexpr bool shares_parameters = false;

  /// One denoiser per group of `partition`; `prediction` is what the nets output.
  Progressive(group::Partition partition, std::vector<Net> denoisers,
              schedule::PredictionType prediction = schedule::PredictionType::Epsilon)
      : partition_(std::move(partition)), nets_(std::move(denoisers)), prediction_(prediction) {
    partition_.validate(partition_.size());
    require(static_cast<std::int64_t>(nets_.size()) == partition_.groups(),
            "Progressive: " + std::to_string(nets_.size()) + " denoisers for a partition of " +
                std::to_string(partition_.groups()) + " groups");
  }
  /// The unified model: one denoiser for all `timesteps` training timesteps.
  Progressive(Net unified, std::int64_t timesteps,
              schedule::PredictionType prediction = schedule::PredictionType::Epsilon)
      : Progressive(single_group(timesteps), std::vector<Net>{std::move(unified)}, prediction) {}

  /// One clone of `base` per group of `partition` (stage 2 of step-adaptive training starts here).
  static Progressive copies_of(Net& base, group::Partition partition, Generator& gen,
                               schedule::PredictionType prediction = schedule::PredictionType::Epsilon) {
    std::vector<Net> nets;
    for (std::int64_t k = 0; k < partition.groups(); ++k) nets.push_back(clone_net(base, gen));
    return Progressive(std::move(partition), std::move(nets), prediction);
  }

  void initialize(Generator& gen) {
    for (auto& n : nets_) n.initialize(gen);
  }
  void set_training(bool training) {
    training_ = training;
    for (auto& n : nets_) n.set_training(training);
  }
  bool training() const { return training_; }
  /// Row j of the following training forwards is sample first + j of the step's global batch:
  /// each group's net keys its dropout masks by the global index of the rows it is given.
  void set_sample_offset(std::uint64_t first) { sample_offset_ = first; }

  const group::Partition& partition() const { return partition_; }
  std::int64_t group_count() const { return partition_.groups(); }
  std::int64_t group_of(std::int64_t timestep) const { return partition_.group_of(timestep); }
  Net& denoiser(std::int64_t k) { return nets_.at(static_cast<std::size_t>(k)); }
  const Net& denoiser(std::int64_t k) const { return nets_.at(static_cast<std::size_t>(k)); }
  schedule::PredictionType prediction_type() const { return prediction_; }
  std::vector<unet::WidthTable> widths() const {
    std::vector<unet::WidthTable> w;
    for (const auto& n : nets_) w.push_back(n.widths());
    return w;
  }

  /// x [N, ...], one integer timestep per sample -> the prediction [N, ...].
  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const std::int64_t> timesteps) {
    std::vector<std::int64_t> groups;
    for (std::int64_t t : timesteps) groups.push_back(partition_.group_of(t));
    return forward(x, timestep_tensor<T, B>(timesteps), groups);
  }

  /// The IntervalModel form: t [N] (possibly fractional timesteps), the group of each sample.
  Tensor<T, B> forward(const Tensor<T, B>& x, const Tensor<T, B>& t, std::span<const std::int64_t> groups) {
    route(x.shape(), t.shape(), groups);
    const auto n = static_cast<std::size_t>(x.dim(0));
    if (training_) key_dropout(n);
    input_shape_ = x.shape();
    Tensor<T, B> y(unet::output_shape_of<Net>(x.shape()));
    for (std::size_t k = 0; k < nets_.size(); ++k) {
      const auto& r = rows_[k];
      if (r.empty()) continue;
      if (r.size() == n) {  // the whole batch in one group: no copies
        y = nets_[k].forward(x, t);
        continue;
      }
      unet::scatter_rows(nets_[k].forward(unet::gather_rows(x, r), unet::gather_rows(t, r)), r, y);
    }
    return y;
  }

  /// dy -> dx; group k's net accumulates gradients from its own samples only.
  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require(!rows_.empty(), "Progressive::backward called without a preceding forward");
    const auto n = static_cast<std::size_t>(dy.dim(0));
    Tensor<T, B> dx(input_shape_);  // C channels, where dy has 2C for a learned variance
    for (std::size_t k = 0; k < nets_.size(); ++k) {
      const auto& r = rows_[k];
      if (r.empty()) continue;
      if (r.size() == n) {
        dx = nets_[k].backward(dy);
        continue;
      }
      unet::scatter_rows(nets_[k].backward(unet::gather_rows(dy, r)), r, dx);
    }
    rows_.clear();
    return dx;
  }

  /// sample::Denoiser: the prediction in evaluation mode (no dropout) and inference mode (no
  /// activations kept), both ended with the call (EvaluationScope).
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const std::int64_t> timesteps) {
    EvaluationScope scope(*this);
    Tensor<T, B> y = forward(x, timesteps);
    rows_.clear();
    return y;
  }
  /// sample::ContinuousDenoiser: fractional timesteps go to the nets as they are; each sample's
  /// group is that of the nearest grid index.
  Tensor<T, B> predict(const Tensor<T, B>& x, std::span<const double> timesteps) {
    const std::vector<std::int64_t> groups = partition_.groups_of_nearest(timesteps);
    const std::vector<T> tv(timesteps.begin(), timesteps.end());
    EvaluationScope scope(*this);
    Tensor<T, B> y = forward(x, Tensor<T, B>::from_host(Shape{static_cast<std::int64_t>(tv.size())}, tv), groups);
    rows_.clear();
    return y;
  }

  /// Per-sample FLOPs of group k's net for inputs of shape `image` ([1, C, S, S]).
  std::int64_t flops(const Shape& image, std::int64_t k) const { return denoiser(k).flops(image); }
  /// FLOPs per sample averaged over the training timesteps: sum_k (|group k| / T) flops_k.
  double average_flops(const Shape& image) const {
    std::vector<std::int64_t> f;
    for (std::int64_t k = 0; k < group_count(); ++k) f.push_back(flops(image, k));
    return unet::average_flops(f, unet::interval_fractions(partition_));
  }
  std::int64_t parameter_count() const {
    std::int64_t p = 0;
    for (const auto& n : nets_) p += n.parameter_count();
    return p;
  }
  std::int64_t parameter_count(std::int64_t k) const { return denoiser(k).parameter_count(); }

  /// Names "group<k>.<Net's names>".
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    for (std::int64_t k = 0; k < group_count(); ++k) visit_group_parameters(k, f, prefix);
  }
  template <class F>
  void visit_group_parameters(std::int64_t k, F&& f, const std::string& prefix) {
    denoiser(k).visit_parameters(f, nn::scoped(prefix, group_prefix(k)));
  }
  static std::string group_prefix(std::int64_t k) { return "group" + std::to_string(k); }
  /// Every dropout layer of every group, f(name, nn::Dropout&), names "group<k>.<Net's names>".
  template <class F>
  void visit_random_state(F&& f, const std::string& prefix) {
    for (std::int64_t k = 0; k < group_count(); ++k)
      denoiser(k).visit_random_state(f, nn::scoped(prefix, group_prefix(k)));
  }

  /// The checkpoint description: kind, structure, boundaries, prediction type, and per group
  /// "group<k>.config.*" and "group<k>.width.<layer>".
  Description describe() const {
    Description d;
    d["model.kind"] = "progressive";
    d["model.structure"] = unet_structure<typename Net::spec>();
    d["model.groups"] = std::to_string(group_count());
    d["model.boundaries"] = starts_label(partition_);
    d["model.prediction"] = prediction_label(prediction_);
    for (std::int64_t k = 0; k < group_count(); ++k) {
      describe_config(d, group_prefix(k) + ".", denoiser(k).config());
      describe_widths(d, group_prefix(k) + ".", denoiser(k).widths());
    }
    return d;
  }

  /// A model of the partition and per-group widths that `d` describes (weights uninitialized
  /// except for dropout seeds from `gen`), e.g. to load a checkpoint of pruned groups.
  static Progressive from_description(const Description& d, Generator& gen,
                                      const unet::UNetConfig& config = Net::default_config()) {
    auto get = [&](const std::string& key) {
      auto it = d.find(key);
      if (it == d.end()) throw ConfigError("Progressive::from_description: no key '" + key + "'");
      return it->second;
    };
    if (get("model.kind") != "progressive" || get("model.structure") != unet_structure<typename Net::spec>())
      throw ConfigError("Progressive::from_description: the description is of '" + get("model.kind") + "' with " +
                        get("model.structure") + ", not of this model type (" + unet_structure<typename Net::spec>() +
                        ")");
    group::Partition p;
    const std::string starts = get("model.boundaries");
    for (std::size_t i = 0; i < starts.size();) {
      std::size_t j = starts.find(',', i);
      if (j == std::string::npos) j = starts.size();
      p.starts.push_back(std::stoll(starts.substr(i, j - i)));
      i = j + 1;
    }
    const std::string pred = get("model.prediction");
    schedule::PredictionType prediction = schedule::PredictionType::Epsilon;
    if (pred == "sample") prediction = schedule::PredictionType::Sample;
    if (pred == "v_prediction") prediction = schedule::PredictionType::VPrediction;
    std::vector<Net> nets;
    for (std::int64_t k = 0; k + 1 < static_cast<std::int64_t>(p.starts.size()); ++k) {
      nets.emplace_back(widths_from_description(d, group_prefix(k) + ".", Net::default_widths()), config);
      nets.back().initialize(gen);
    }
    return Progressive(std::move(p), std::move(nets), prediction);
  }

 private:
  void route(const Shape& x, const Shape& t, std::span<const std::int64_t> groups) {
    if (x.rank() < 1 || static_cast<std::int64_t>(groups.size()) != x[0] || t.rank() != 1 || t[0] != x[0])
      throw ShapeError("Progressive: " + std::to_string(groups.size()) + " group indices and timesteps of shape " +
                       t.str() + " for input shape " + x.str());
    rows_.assign(nets_.size(), {});
    for (std::size_t i = 0; i < groups.size(); ++i) {
      if (groups[i] < 0 || groups[i] >= group_count()) {
        rows_.clear();
        throw ConfigError("Progressive: sample " + std::to_string(i) + " names group " + std::to_string(groups[i]) +
                          ", outside [0, " + std::to_string(group_count()) + ")");
      }
      rows_[static_cast<std::size_t>(groups[i])].push_back(static_cast<std::int64_t>(i));
    }
  }

  // Group k's net sees rows_[k] of this batch: its dropout masks are keyed by their global indices.
  void key_dropout(std::size_t n) {
    if constexpr (requires(Net & net) { net.visit_random_state(nn::detail::any_dropout, std::string()); })
      for (std::size_t k = 0; k < nets_.size(); ++k) {
        const auto& r = rows_[k];
        if (r.empty()) continue;
        if (r.size() == n)
          nn::set_sample_offset(nets_[k], sample_offset_);
        else
          nn::set_sample_rows(nets_[k], sample_offset_, r);
      }
  }

  group::Partition partition_;
  std::vector<Net> nets_;
  schedule::PredictionType prediction_;
  bool training_ = true;
  std::uint64_t sample_offset_ = 0;              // global index of this batch's row 0
  std::vector<std::vector<std::int64_t>> rows_;  // samples of each group, kept for backward
  Shape input_shape_;
};

}  // namespace progdiff::model

#include "progdiff/core/precompiled.hpp"
#if PROGDIFF_PRECOMPILED
// The small presets' progressive models come from the precompiled component.
#include "progdiff/unet/small_presets.hpp"
#include "progdiff/unet/unet.hpp"
namespace progdiff::model {
extern template class Progressive<unet::TinyUNet>;
extern template class Progressive<unet::SmallUNet>;
extern template class Progressive<unet::PaperUNet>;
}  // namespace progdiff::model
// So do their checkpoints (io/checkpoint.hpp).
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/checkpoint.hpp"
#define PROGDIFF_EXTERN_CHECKPOINT(Net)                                                                      \
  extern template void save_checkpoint<model::Progressive<Net>, float, backend::Cpu>(                        \
      const std::filesystem::path&, model::Progressive<Net>&, const ModelDescription&, const TrainingState&, \
      const optim::AdamW<float, backend::Cpu>*, const optim::Ema<float, backend::Cpu>*);                     \
  extern template TrainingState load_checkpoint<model::Progressive<Net>, float, backend::Cpu>(               \
      const std::filesystem::path&, model::Progressive<Net>&, const ModelDescription&,                       \
      optim::AdamW<float, backend::Cpu>*, optim::Ema<float, backend::Cpu>*);
namespace progdiff::io {
PROGDIFF_EXTERN_CHECKPOINT(unet::TinyUNet)
PROGDIFF_EXTERN_CHECKPOINT(unet::SmallUNet)
PROGDIFF_EXTERN_CHECKPOINT(unet::PaperUNet)
}  // namespace progdiff::io
#undef PROGDIFF_EXTERN_CHECKPOINT
#endif

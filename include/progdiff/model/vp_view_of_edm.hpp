#pragma once
// VpViewOfEdm: an EDM denoiser (model::EdmPreconditioned, or any model with grid() and
// predict(x, timesteps) on EDM's scale) read as a variance-preserving model on its grid's
// schedule, alpha-bar_t = 1 / (1 + sigma_t^2) (schedule::EDM). Code written for VP models (the
// per-group test loss of metrics/group_loss.hpp, a VP sampler) noises as
//   x_t = sqrt(abar) y + sqrt(1 - abar) n = sqrt(abar) (y + sigma n),   sigma = sqrt((1 - abar) / abar),
// so EDM's input is x = x_t / sqrt(abar) = sqrt(1 + sigma^2) x_t, and D(x; sigma), the x0 estimate,
// is the output (prediction type Sample). The VP epsilon then follows as for any x0 predictor:
// eps = (x_t - sqrt(abar) D) / sqrt(1 - abar) (sample/prediction.hpp). Without the rescaling an
// EDM model would see inputs shrunk by sqrt(abar), as much as 80 times at the largest sigma.
//   model::VpViewOfEdm view{edm};
//   auto losses = metrics::denoising_loss_per_group<float, Cpu>(view, edm.grid().schedule(), p, test, c);
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/model/edm_preconditioning.hpp"
#include "progdiff/schedule/prediction_type.hpp"

namespace progdiff::model {

template <class D>
class VpViewOfEdm {
 public:
  explicit VpViewOfEdm(D& model) : model_(model) {}

  /// D(sqrt(1 + sigma_i^2) x_t; sigma_i) per sample, sigma_i = grid().sigma_at(t_i).
  template <class T, class B>
  Tensor<T, B> predict(const Tensor<T, B>& x_t, std::span<const std::int64_t> timesteps) {
    require<ShapeError>(
        x_t.rank() >= 1 && x_t.dim(0) == static_cast<std::int64_t>(timesteps.size()),
        "VpViewOfEdm: " + std::to_string(timesteps.size()) + " timesteps for a batch of shape " + x_t.shape().str());
    std::vector<double> up(timesteps.size());
    for (std::size_t i = 0; i < timesteps.size(); ++i) {
      const double sigma = model_.grid().sigma_at(static_cast<double>(timesteps[i]));
      up[i] = std::sqrt(1.0 + sigma * sigma);
    }
    return model_.predict(detail::edm_rows<T, B>(x_t, up, nullptr, {}), timesteps);
  }
  schedule::PredictionType prediction_type() const { return model_.prediction_type(); }

 private:
  D& model_;
};

}  // namespace progdiff::model

#pragma once
// The loss that ranks a group's pruning schemes and that the gradient criteria (Taylor,
// Diff-Pruning) differentiate: the weighted mean-squared error of the net's prediction head
// against its target, L_simple's term, whatever objective the net is fine-tuned with.
//
//   C outputs (L_simple nets)          the whole output
//   2C outputs (unet::LearnedVariance) the first C channels, the prediction; the variance
//                                      interpolation v gets a zero gradient
//
// Why not IDDPM's hybrid loss for a learned-variance net: its L_vlb part (lambda = 0.001, in bits
// per dimension) trains the variance head alone behind a stop-gradient on the mean, pruning keeps
// every output channel of conv_out, and IDDPM itself compares models by L_simple's term; the same
// epsilon-head loss is what the main job's per-group evaluation reports for the hybrid recipe
// (sample::MeanOnly). Schemes of simple and hybrid runs are so scored on the same scale.
//
//   loss::LossResult<T, B> l = tdc::prediction_head_loss<Net>(net.forward(x_t, t), target, weights);
//   net.backward(l.grad);   // l.grad has the output's shape (2C channels for a learned variance)
#include <cstdint>
#include <span>
#include <utility>

#include "progdiff/core/tensor.hpp"
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/sample/mean_only.hpp"
#include "progdiff/unet/output_channels.hpp"

namespace progdiff::tdc {

/// The weighted MSE of `output`'s prediction head against `target` (see the top of this file),
/// its gradient with respect to the whole output.
template <class Net, class T, class B>
loss::LossResult<T, B> prediction_head_loss(const Tensor<T, B>& output, const Tensor<T, B>& target,
                                            std::span<const double> weights) {
  if constexpr (unet::learns_variance_v<Net>) {
    const Tensor<T, B> head = sample::mean_channels(output, "tdc::prediction_head_loss");
    loss::LossResult<T, B> l = loss::weighted_mse(head, target, weights);
    // The head's gradient in the first C channels of each sample, zeros for the variance channels.
    Tensor<T, B> grad = Tensor<T, B>::zeros(output.shape());
    const std::int64_t n = head.dim(0), d = head.numel() / n;
    B::template copy_2d<T>(n, d, l.grad.data(), d, grad.data(), 2 * d);
    l.grad = std::move(grad);
    return l;
  } else {
    return loss::weighted_mse(output, target, weights);
  }
}

}  // namespace progdiff::tdc

#pragma once
// DDPM / DDPM++'s initialization of a U-Net part, by parameter name (the VarianceScalingInit
// option): the default_init of Ho et al.'s and Song et al.'s code, variance scaling with
// fan_avg and a uniform distribution, and zero last convolutions so that every residual branch
// starts as the identity and the network's first output is zero.
#include <cmath>
#include <string>
#include <string_view>

#include "progdiff/core/random.hpp"
#include "progdiff/nn/init.hpp"
#include "progdiff/nn/parameter.hpp"

namespace progdiff::unet {

/// Scale s of the variance-scaling bound of a weight, 0 for a zero-initialized one.
inline double variance_scaling_scale(std::string_view name) {
  const auto ends_with = [&](std::string_view suffix) { return name.ends_with(suffix); };
  // The last convolution of every residual branch and of the network.
  if (ends_with(".conv2.weight") || ends_with(".proj.weight") || name == "conv_out.weight") return 0.0;
  if (ends_with(".qkv.weight")) return 0.1;  // DDPM++'s attention NIN layers q, k, v
  return 1.0;
}

/// U(-b, b) with b = sqrt(3 s / fan_avg) for every weight (rank >= 2), zeros for biases, and
/// GroupNorm's gamma = 1, beta = 0. fan_in = shape[1] * receptive field, fan_out = shape[0] *
/// receptive field; the fused qkv convolution counts as three C x C layers (fan_out = C).
template <class Part>
void variance_scaling_init(Part& part, Generator& gen) {
  part.visit_parameters(
      [&]<class P>(const std::string& name, P& p) {
        using T = typename decltype(p.value)::value_type;
        const Shape& shape = p.value.shape();
        if (name.ends_with(".gamma")) {
          nn::init_constant(p.value, T(1));
          return;
        }
        if (shape.rank() < 2) {  // biases, GroupNorm's beta
          nn::init_constant(p.value, T(0));
          return;
        }
        const double s = variance_scaling_scale(name);
        if (s == 0.0) {
          nn::init_constant(p.value, T(0));
          return;
        }
        std::int64_t receptive = 1;
        for (int d = 2; d < shape.rank(); ++d) receptive *= shape[d];
        const double fan_in = static_cast<double>(shape[1] * receptive);
        double fan_out = static_cast<double>(shape[0] * receptive);
        if (name.ends_with("qkv.weight")) fan_out /= 3;
        nn::init_uniform(p.value, std::sqrt(3.0 * s / ((fan_in + fan_out) / 2)), gen);
      },
      "");
}

}  // namespace progdiff::unet

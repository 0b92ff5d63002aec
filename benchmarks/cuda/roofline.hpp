#pragma once
// The roofline model of an NVIDIA H100 SXM5 for the kernels of the CUDA back end: each
// kernel's floating-point operations and the bytes it must move to and from HBM at least
// (every operand read once, every result written once, float32), and the time the roofline
// allows, max(FLOPs / peak, bytes / bandwidth). Figures from NVIDIA's H100 Tensor Core GPU
// datasheet (H100 SXM column); the tensor-core figures there are quoted with 2:4 sparsity,
// the dense rates used here are half of them.
#include <algorithm>
#include <cstdint>

namespace progdiff::bench::h100 {

inline constexpr double kFp32Flops = 67e12;     // FP32 on the CUDA cores (no tensor cores)
inline constexpr double kTf32Flops = 494.7e12;  // TF32 tensor cores, dense (989.4 with sparsity)
inline constexpr double kBf16Flops = 989.4e12;  // BF16 tensor cores, dense (1979 with sparsity)
inline constexpr double kHbmBytes = 3.35e12;    // HBM3, 80 GB

struct Cost {
  double flops = 0;
  double bytes = 0;
  double intensity() const { return bytes > 0 ? flops / bytes : 0; }
  /// Seconds the roofline allows at a compute peak of `peak` FLOP/s.
  double seconds(double peak) const { return std::max(flops / peak, bytes / kHbmBytes); }
  bool memory_bound(double peak) const { return bytes / kHbmBytes >= flops / peak; }
};

inline constexpr double kF = 4.0;  // bytes per float

/// C[m, n] = A[m, k] B[k, n] (beta = 0).
inline Cost gemm(double m, double n, double k) { return {2 * m * n * k, kF * (m * k + k * n + m * n)}; }

/// 3x3 (pad 1, stride 1) convolution on [n, c_in, s, s] -> [n, c_out, s, s], as an implicit GEMM:
/// input, weights and output move once. Backward-data and backward-weight have the same cost.
inline Cost conv3x3(double n, double c_in, double c_out, double s) {
  const double hw = s * s;
  return {2 * n * c_out * hw * 9 * c_in, kF * (n * c_in * hw + 9 * c_in * c_out + n * c_out * hw)};
}

/// The same convolution through im2col + GEMM (the back end's path): the column buffer
/// [n, 9 c_in, s^2] is written once and read once more.
inline Cost conv3x3_im2col(double n, double c_in, double c_out, double s) {
  Cost c = conv3x3(n, c_in, c_out, s);
  c.bytes += 2 * kF * n * 9 * c_in * s * s;
  return c;
}

/// GroupNorm forward on e elements: mean, variance, normalize and affine (about 8 FLOPs an
/// element); x read once, y written once (a group fits in L2, so the three passes over it
/// reach HBM once).
inline Cost group_norm_forward(double e) { return {8 * e, 2 * kF * e}; }
/// Backward: x and dy read, dx written; about 12 FLOPs an element.
inline Cost group_norm_backward(double e) { return {12 * e, 3 * kF * e}; }

/// SiLU on e elements: exp, add, divide, multiply (exp counted as one operation).
inline Cost silu(double e) { return {4 * e, 2 * kF * e}; }

/// Single-head self-attention over l = s^2 tokens of c channels, batch n: scores Q K^T,
/// softmax (scores written, read, probabilities written), then P V. Projections not included.
inline Cost attention_core(double n, double c, double s) {
  const double l = s * s;
  const Cost qk = gemm(l, l, c), pv = gemm(l, c, l);
  const double softmax_flops = 5 * l * l, softmax_bytes = 2 * kF * l * l;
  return {n * (qk.flops + pv.flops + softmax_flops), n * (qk.bytes + pv.bytes + softmax_bytes)};
}

/// AdamW over p parameters: param, grad, m, v read; param, m, v written; about 15 FLOPs each.
inline Cost adamw(double p) { return {15 * p, 7 * kF * p}; }

/// A sampler update over e elements with `terms` input tensors (DDIM with noise: 3).
inline Cost weighted_sum(double e, double terms) { return {2 * terms * e, kF * (terms + 1) * e}; }

/// Philox-4x32-10 normals: 10 rounds of 2 multiplies and 4 xors per 4 words, plus Box-Muller;
/// counted as 40 operations an element (integer and transcendental work included).
inline Cost philox_normal(double e) { return {40 * e, kF * e}; }

/// Optimal denoiser (Prop. 1 eq. 4) of m rows against n data points of dimension d: two GEMMs,
/// the softmax over [m, n], the data read twice.
inline Cost optimal_denoiser(double m, double n, double d) {
  return {4 * m * n * d + 8 * m * n, kF * (2 * n * d + 3 * m * n + 2 * m * d)};
}

}  // namespace progdiff::bench::h100

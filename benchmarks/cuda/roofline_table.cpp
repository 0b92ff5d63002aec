// Prints the H100 roofline table of docs/performance.md ("GPU roofline"): for each main kernel
// of the CUDA back end at the shapes of a 32x32 U-Net (levels 1-2-2-2, base 128, batch 64), its FLOPs,
// the bytes it must move, arithmetic intensity, whether FP32 (CUDA cores) or TF32 (tensor
// cores) leaves it compute- or memory-bound, and the roofline time of each. Needs no GPU.
#include <cstdio>
#include <string>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/unet/unet.hpp"
#include "roofline.hpp"

namespace {

namespace h100 = progdiff::bench::h100;

void row(const std::string& kernel, const std::string& shape, h100::Cost c, bool tensor_core_gemm) {
  const double us_fp32 = c.seconds(h100::kFp32Flops) * 1e6;
  std::string tf32 = "same";
  std::string bound = c.memory_bound(h100::kFp32Flops) ? "memory" : "compute";
  if (tensor_core_gemm) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", c.seconds(h100::kTf32Flops) * 1e6);
    tf32 = buf;
    bound += c.memory_bound(h100::kTf32Flops) ? " / memory" : " / compute";
  }
  char mb[32] = "-", ai[32] = "-";  // whole-network rows count FLOPs only
  if (c.bytes > 0) {
    std::snprintf(mb, sizeof mb, "%.3g", c.bytes * 1e-6);
    std::snprintf(ai, sizeof ai, "%.1f", c.intensity());
  }
  std::printf("| %s | %s | %.3g | %s | %s | %s | %.1f | %s |\n", kernel.c_str(), shape.c_str(), c.flops * 1e-9, mb, ai,
              bound.c_str(), us_fp32, tf32.c_str());
}

}  // namespace

int main() {
  using Cifar = progdiff::unet::UNet<progdiff::unet::Levels<1, 2, 2, 2>, progdiff::unet::ResBlocks<2>,
                                     progdiff::unet::AttentionAt<16>, progdiff::unet::ImageSize<32>,
                                     progdiff::unet::BaseChannels<128>>;
  const Cifar net;
  const double image_flops = double(net.flops(progdiff::Shape{1, 3, 32, 32}));
  const double params = double(net.parameter_count());
  std::printf("H100 SXM: FP32 %.1f TFLOP/s, TF32 dense %.1f TFLOP/s, BF16 dense %.1f TFLOP/s, HBM3 %.2f TB/s;\n",
              h100::kFp32Flops * 1e-12, h100::kTf32Flops * 1e-12, h100::kBf16Flops * 1e-12, h100::kHbmBytes * 1e-12);
  std::printf(
      "ridge points: FP32 %.0f, TF32 %.0f, BF16 %.0f FLOP/byte. U-Net: %.4g GFLOP per image, %.0f parameters\n\n",
      h100::kFp32Flops / h100::kHbmBytes, h100::kTf32Flops / h100::kHbmBytes, h100::kBf16Flops / h100::kHbmBytes,
      image_flops * 1e-9, params);
  std::printf(
      "| kernel | shape | GFLOP | MB moved | FLOP/byte | bound (FP32 / TF32) | FP32 roofline us | TF32 roofline us "
      "|\n");
  std::printf("|---|---|---:|---:|---:|---|---:|---:|\n");
  row("GEMM", "4096 x 4096 x 4096", h100::gemm(4096, 4096, 4096), true);
  for (auto [c, s] : {std::pair{128, 32}, {256, 16}, {256, 8}}) {
    const std::string shape = "64 x " + std::to_string(c) + " x " + std::to_string(s) + "^2";
    row("conv3x3 fwd (implicit GEMM)", shape, h100::conv3x3(64, c, c, s), true);
    row("conv3x3 fwd (im2col + GEMM)", shape, h100::conv3x3_im2col(64, c, c, s), true);
  }
  const double e32 = 64.0 * 128 * 32 * 32, e16 = 64.0 * 256 * 16 * 16;
  row("GroupNorm fwd", "64 x 128 x 32^2", h100::group_norm_forward(e32), false);
  row("GroupNorm bwd", "64 x 128 x 32^2", h100::group_norm_backward(e32), false);
  row("GroupNorm fwd", "64 x 256 x 16^2", h100::group_norm_forward(e16), false);
  row("attention QK^T, softmax, PV", "64 x 256 x 16^2, 1 head", h100::attention_core(64, 256, 16), true);
  row("SiLU", "64 x 128 x 32^2", h100::silu(e32), false);
  row("AdamW", std::to_string(static_cast<long long>(params)) + " parameters", h100::adamw(params), false);
  row("DDIM update (weighted_sum, 3 terms)", "64 x 3 x 32^2", h100::weighted_sum(64.0 * 3072, 3), false);
  row("Philox normals (normal_rows)", "64 x 3 x 32^2", h100::philox_normal(64.0 * 3072), false);
  row("optimal denoiser eq. 4", "128 rows, 60000 x 784", h100::optimal_denoiser(128, 60000, 784), true);
  h100::Cost step{3 * image_flops * 64, 0};
  row("U-Net training step (fwd + bwd)", "batch 64", step, true);
  row("U-Net forward (one DDIM step)", "batch 64", h100::Cost{image_flops * 64, 0}, true);
  return 0;
}

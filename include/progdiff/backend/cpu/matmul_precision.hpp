#pragma once
// The precision of the CPU back end's convolution products: fp32 (the default) or bf16 mixed
// precision, as PyTorch's CPU autocast offers it. Under bf16 the convolutions that the direct
// AVX-512 kernels run (stride 1, "same" padding, whole 64-pixel panels: every 3x3 and 1x1
// convolution of the U-Nets at 8x8 and larger) round their two operands to bf16 (round to
// nearest even) and accumulate the products in fp32 with AVX512_BF16's vdpbf16ps; inputs,
// outputs, weights (the master copy the optimizer updates) and gradients stay fp32. Forward,
// backward data and backward weight all take the bf16 kernels; strided convolutions, shapes the
// direct kernels do not cover and every GEMM (attention, linear layers) stay fp32.
//
// A process-wide run-time setting, read once per convolution call (set it between calls, not
// while one runs). Asking for bf16 on a CPU without AVX512_BF16, or from a build whose compiler
// did not target it (-march=native on such a CPU), is a ConfigError that names what is missing.
#include <atomic>
#include <string>

#include "progdiff/backend/cpu/cpu_identity.hpp"
#include "progdiff/core/error.hpp"

namespace progdiff::backend::cpu {

enum class MatmulPrecision { fp32, bf16 };

inline const char* to_string(MatmulPrecision p) { return p == MatmulPrecision::bf16 ? "bf16" : "fp32"; }

/// Whether this build has the bf16 kernels (the compiler targeted AVX512_BF16).
inline constexpr bool bf16_compiled() {
#if defined(__AVX512F__) && defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  return true;
#else
  return false;
#endif
}

/// Why bf16 cannot run on `cpu` with this build; empty when it can.
inline std::string bf16_unavailable_reason(const CpuIdentity& cpu) {
  if (!cpu.avx512_bf16)
    return "bf16 mixed precision needs a CPU with AVX512_BF16 (the avx512_bf16 flag of /proc/cpuinfo: Intel "
           "Cooper Lake or Sapphire Rapids and later, AMD Zen 4 and later); this CPU (" +
           cpu.brand + ") lacks it";
  if (!bf16_compiled())
    return "bf16 mixed precision: this CPU has AVX512_BF16, but this build was compiled without it; build with "
           "-march=native (the release preset) on this machine";
  return {};
}

namespace detail {
inline std::atomic<MatmulPrecision>& matmul_precision_setting() {
  static std::atomic<MatmulPrecision> setting{MatmulPrecision::fp32};
  return setting;
}
}  // namespace detail

/// The precision the convolution kernels use now (fp32 unless set).
inline MatmulPrecision matmul_precision() { return detail::matmul_precision_setting().load(std::memory_order_relaxed); }

/// Checks that `p` can run on `cpu` with this build: a ConfigError naming the missing feature if not.
inline void require_matmul_precision(MatmulPrecision p, const CpuIdentity& cpu) {
  if (p != MatmulPrecision::bf16) return;
  const std::string reason = bf16_unavailable_reason(cpu);
  if (!reason.empty()) throw ConfigError(reason);
}

/// Sets the precision for every later convolution of this process (checked on the running CPU).
inline void set_matmul_precision(MatmulPrecision p) {
  if (p != MatmulPrecision::fp32) require_matmul_precision(p, identify_cpu());
  detail::matmul_precision_setting().store(p, std::memory_order_relaxed);
}

/// The precision named "fp32" or "bf16" (a ConfigError for anything else).
inline MatmulPrecision parse_matmul_precision(const std::string& text) {
  if (text == "fp32") return MatmulPrecision::fp32;
  if (text == "bf16") return MatmulPrecision::bf16;
  throw ConfigError("unknown matmul precision \"" + text + "\" (fp32 | bf16)");
}

/// Sets a precision for its lifetime and restores the one before it.
class MatmulPrecisionScope {
 public:
  explicit MatmulPrecisionScope(MatmulPrecision p) : previous_(matmul_precision()) { set_matmul_precision(p); }
  ~MatmulPrecisionScope() { detail::matmul_precision_setting().store(previous_, std::memory_order_relaxed); }
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  MatmulPrecision previous_;
};

}  // namespace progdiff::backend::cpu

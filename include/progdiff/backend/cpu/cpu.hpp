#pragma once
#include "progdiff/backend/backend.hpp"
#include "progdiff/backend/cpu/conv.hpp"
#include "progdiff/backend/cpu/elementwise.hpp"
#include "progdiff/backend/cpu/gemm.hpp"
#include "progdiff/backend/cpu/memory.hpp"
#include "progdiff/backend/cpu/normalization.hpp"
#include "progdiff/backend/cpu/sampling.hpp"

namespace progdiff::backend {

/// The CPU back end: Eigen GEMM, OpenMP threads, cached host memory.
struct Cpu : cpu::Memory, cpu::Gemm, cpu::Elementwise, cpu::Normalization, cpu::Conv, cpu::Sampling {
  static constexpr const char* name() { return "cpu"; }
  static constexpr bool host_accessible = true;
};

static_assert(check_backend<Cpu>());

}  // namespace progdiff::backend

// The optimizer and the EMA, float on the CPU back end, compiled once for every program that
// links progdiff::precompiled (see progdiff/core/precompiled.hpp).
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/optim/ema.hpp"

namespace progdiff::optim {
template class AdamW<float, backend::Cpu>;
template class Ema<float, backend::Cpu>;
}  // namespace progdiff::optim

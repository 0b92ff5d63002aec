// The optimizer and the EMA, float on the CPU back end, compiled once for every program that
// links progdiff::precompiled (see progdiff/core/precompiled.hpp).
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/train/adamw.hpp"
#include "progdiff/train/ema.hpp"

namespace progdiff::train {
template class AdamW<float, backend::Cpu>;
template class Ema<float, backend::Cpu>;
}  // namespace progdiff::train

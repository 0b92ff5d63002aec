// The layers, float on the CPU back end, compiled once for every program that links
// progdiff::precompiled (see progdiff/core/precompiled.hpp).
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/nn/attention_block.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/downsample.hpp"
#include "progdiff/nn/dropout.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/res_block.hpp"
#include "progdiff/nn/silu.hpp"
#include "progdiff/nn/timestep_embedding.hpp"
#include "progdiff/nn/upsample.hpp"

namespace progdiff::nn {
template class AttentionBlock<float, backend::Cpu>;
template class Conv2d<float, backend::Cpu>;
template class Downsample<float, backend::Cpu>;
template class Dropout<float, backend::Cpu>;
template class GroupNorm<float, backend::Cpu>;
template class Linear<float, backend::Cpu>;
template class ResBlock<float, backend::Cpu>;
template class SiLU<float, backend::Cpu>;
template class TimestepEmbedding<float, backend::Cpu>;
template class Upsample<float, backend::Cpu>;
}  // namespace progdiff::nn

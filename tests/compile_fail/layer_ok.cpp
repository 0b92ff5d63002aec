// Every built-in single-input layer satisfies the Layer concept.
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/silu.hpp"

using B = progdiff::backend::Cpu;
static_assert(progdiff::nn::check_layer<progdiff::nn::Conv2d<float, B>>());
static_assert(progdiff::nn::check_layer<progdiff::nn::Linear<double, B>>());
static_assert(progdiff::nn::check_layer<progdiff::nn::GroupNorm<float, B>>());
static_assert(progdiff::nn::check_layer<progdiff::nn::SiLU<float, B>>());
int main() { return 0; }

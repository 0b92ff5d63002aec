// expect: this type is not a progdiff::nn::Layer
// A type with forward but no backward, costs or parameters is not a layer.
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/nn/layer.hpp"

struct ForwardOnly {
  using value_type = float;
  using backend_type = progdiff::backend::Cpu;
  progdiff::Tensor<float> forward(const progdiff::Tensor<float>& x) { return x; }
};

static_assert(progdiff::nn::check_layer<ForwardOnly>());
int main() { return 0; }
